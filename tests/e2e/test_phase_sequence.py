"""The phase of a fresh job only moves forward: Pending → Injected → Ready, never Ready →
Degraded → Ready while Consul's checks warm up (Consul starts every check critical).

On the full devstack (real OpenBao, real nginx, the Consul twin running the job's real HTTP
checks against the TLS port, the Nomad twin judging the deployment by those checks with
min_healthy_time), the status Variable is sampled through the job's first 30 s.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.app import App
from controller.dev.demo import web_job
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionStatus, ConditionType, MeshStatus, Phase
from devstack.executor import RawExecDriver
from devstack.up import Devstack
from tests.support.e2e_stack import world
from tests.support.waiting import eventually

__all__ = ["world"]  # the fixture, used by name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FORWARD = [Phase.PENDING, Phase.INJECTED, Phase.READY]
WATCH_S = 30.0


def verified(status: MeshStatus) -> bool:
    wanted = (
        ConditionType.SIDECAR_INJECTED,
        ConditionType.ROLLED_OUT,
        ConditionType.CONSUL_HEALTHY,
        ConditionType.CERT_VALID,
        ConditionType.PLAINTEXT_RETIRED,
    )
    return all(
        (c := status.condition(kind)) is not None and c.status == ConditionStatus.TRUE
        for kind in wanted
    )


async def test_a_fresh_job_only_moves_forward_through_its_first_30_seconds(
    world: tuple[Devstack, RawExecDriver, App],
) -> None:
    _, _, app = world
    started = time.monotonic()
    await app.jobs.register_job(web_job(), enforce_index=None)
    seen: list[MeshStatus] = []
    while time.monotonic() - started < WATCH_S:
        status = await app.statuses.get("default", "web")
        if status is not None and (not seen or seen[-1].phase != status.phase):
            seen.append(status)
        await asyncio.sleep(0.1)
    phases = [s.phase for s in seen]
    print("\nphases:", " → ".join(f"{s.phase} ({s.message})" for s in seen))

    assert Phase.DEGRADED not in phases, phases
    assert phases[-1] is Phase.READY, phases
    assert [FORWARD.index(p) for p in phases] == sorted({FORWARD.index(p) for p in phases})
    ready = seen[-1]
    assert verified(ready) and ready.verified_at != ""
    rolled = ready.condition(ConditionType.ROLLED_OUT)
    assert rolled is not None and rolled.reason == "DeploymentSuccessful"
    deployment = await app.jobs.latest_deployment("web", "default")
    assert deployment is not None and deployment["Status"] == "successful"
    injected = [s for s in seen if s.phase is Phase.INJECTED]
    assert injected and all(s.message.startswith("waiting for") for s in injected), [
        s.message for s in injected
    ]

    async def book_says_ready() -> bool:  # /status and mesh_jobs read the phase book
        return app.reconciler.phases.get(JobKey("default", "web")) is Phase.READY

    await eventually(book_says_ready, within=5.0, what="the phase book follows the record")
