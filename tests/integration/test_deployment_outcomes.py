"""Failed, reverted and canary deployments of the controller's version, on the strict twin.

The twin judges deployments by Consul checks with Nomad's deadlines, auto-revert and canary
promotion (devstack/README.md, Deployments). A stand-in Consul (tests/support/deploy_checks.py)
fails the checks of the injected version on demand, so each test shows what the status says
while Nomad fails, reverts or holds the injection, and that the job converges once the cause
is gone — with the controller's job writes counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from datetime import datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from click.testing import CliRunner

from controller.app import App
from controller.cmd import controllerctl
from crds_equivalent.status import ConditionType, MeshStatus
from devstack.nomad import NomadTwin
from devstack.testing import FAST, User, injected, running, settings_for, stored, user_job
from tests.support.ctl_stack import UNSET
from tests.support.deploy_checks import SidecarChecks, deploy_update
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

# Retries after 1 s, then 2 s, then every 4 s: the production shape (5, 10, 20, 30 min), faster.
TUNING = dataclasses.replace(FAST, deploy_retry_base=1.0, deploy_retry_cap=4.0)


@pytest_asyncio.fixture
async def checks() -> SidecarChecks:
    return SidecarChecks()


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory, checks: SidecarChecks) -> NomadTwin:
    t = await make_nomad_twin(nodes=2, heartbeat_interval=0.2, service_checks=checks)
    checks.twin = t
    return t


def job_with(job_id: str, meta: dict[str, str], **update: Any) -> dict[str, Any]:
    job = user_job(job_id, {"mesh.tls": "true", **meta})
    job["TaskGroups"][0]["Update"] = deploy_update(**update)
    return job


async def status(app: App, job_id: str) -> MeshStatus | None:
    return await app.statuses.get("default", job_id)


def deployments(twin: NomadTwin, job_id: str) -> list[dict[str, Any]]:
    found = [d for d in twin.state.deployments.values() if d["JobID"] == job_id]
    return sorted(found, key=lambda d: int(d["CreateIndex"]))


async def stable_before_controller(twin: NomadTwin, user: User, job: dict[str, Any]) -> None:
    """The flagged job deployed and marked stable while no controller ran (an existing
    service, or one submitted while the controller was down): the stable version Nomad's
    auto-revert goes back to is un-injected."""
    await user.submit(job)
    await eventually(
        lambda: any(d["Status"] == "successful" for d in deployments(twin, job["ID"])),
        within=20,
        what="the user's version deployed",
    )


async def test_a_check_that_never_passes_is_degraded_with_nomads_text_then_retried_once_fixed(
    twin: NomadTwin, user: User, checks: SidecarChecks
) -> None:
    checks.broken = True
    async with running(settings_for(twin), tuning=TUNING) as (app, _):
        await user.submit(job_with("pay", {}))

        async def failed() -> MeshStatus | None:
            s = await status(app, "pay")
            rolled = s.condition(ConditionType.ROLLED_OUT) if s else None
            return s if rolled is not None and rolled.reason == "DeploymentFailed" else None

        degraded = await eventually(failed, within=30, what="pay DeploymentFailed")
        assert degraded.phase == "Degraded"
        assert "Failed due to unhealthy allocations" in degraded.message
        assert "next attempt at" in degraded.message
        retry = json.loads(degraded.retry)
        assert retry["reason"] == "DeploymentFailed" and retry["attempts"] >= 1

        # Not fixed yet: the controller retries (a new version each time), spaced out.
        await eventually(lambda: app.reconciler.writes["retry"] >= 2, within=30, what="retries")
        checks.broken = False
        ready = await eventually(
            lambda: _ready(app, "pay"), within=40, what="pay Ready after the fix"
        )
        assert ready.retry == ""  # a success starts the count over
        assert injected(stored(twin, "pay"))
        assert deployments(twin, "pay")[-1]["Status"] == "successful"
        assert app.reconciler.writes["apply"] == 1
        # Nomad's deadline: 1 s base, doubling to 4 s; every retry followed a counted failure.
        assert app.reconciler.writes["retry"] <= json.loads(degraded.retry)["attempts"] + 6


async def test_auto_revert_is_recorded_and_re_injected_with_growing_delay(
    twin: NomadTwin, user: User, checks: SidecarChecks
) -> None:
    checks.broken = True
    await stable_before_controller(twin, user, job_with("ledger", {}, AutoRevert=True))
    seen: dict[int, tuple[datetime, str]] = {}
    async with running(settings_for(twin), tuning=TUNING) as (app, _):

        async def attempts_recorded() -> bool:
            s = await status(app, "ledger")
            if s is not None and s.retry:
                retry = json.loads(s.retry)
                if retry["attempts"] not in seen:
                    seen[retry["attempts"]] = (
                        datetime.fromisoformat(retry["next_attempt"]),
                        s.message,
                    )
            return len(seen) >= 3

        await eventually(attempts_recorded, within=60, every=0.1, what="three reverts")
        s = await status(app, "ledger")
        assert s is not None
        _, first_message = seen[min(seen)]
        assert "Nomad reverted the injection" in first_message
        assert "rolling back to job version 0" in first_message
        rolled = s.condition(ConditionType.ROLLED_OUT)
        assert rolled is not None and rolled.reason in ("Reverted", "RollingOut")
        # No fight: one injection per counted revert (plus the first), and the gaps between
        # attempts grow with the backoff (1 s, 2 s, 4 s) on top of each failed rollout.
        applies = app.reconciler.writes["apply"]
        assert applies <= max(seen) + 1
        nexts = [seen[n][0] for n in sorted(seen)]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(nexts)]
        assert gaps[0] >= 2.0 and gaps[1] >= 4.0, gaps

        checks.broken = False
        ready = await eventually(
            lambda: _ready(app, "ledger"), within=40, what="ledger Ready after the fix"
        )
        assert ready.retry == ""
        assert injected(stored(twin, "ledger"))


async def test_manual_canaries_wait_for_the_user_and_a_promotion_by_hand_makes_it_ready(
    twin: NomadTwin, user: User, http: aiohttp.ClientSession
) -> None:
    await stable_before_controller(
        twin, user, job_with("shop", {}, Canary=1, HealthyDeadline=10_000_000_000)
    )
    async with running(settings_for(twin), tuning=TUNING) as (app, _):

        async def waiting() -> MeshStatus | None:
            s = await status(app, "shop")
            return s if s is not None and "canary promotion" in s.message else None

        s = await eventually(waiting, within=30, what="shop waits for promotion")
        dep = deployments(twin, "shop")[-1]
        assert s.message == f"waiting for canary promotion of deployment {dep['ID']}"
        assert str(s.phase) == "Injected"
        await eventually(
            lambda: all(
                g["HealthyAllocs"] >= 1 for g in dep_of(twin, dep["ID"])["TaskGroups"].values()
            ),
            within=20,
            what="the canary healthy",
        )
        s = await status(app, "shop")
        assert s is not None and "canary promotion" in s.message  # still the user's call
        assert app.reconciler.writes["promote"] == 0
        await app.statuses.flush()  # controllerctl reads the Variable: no coalescing window
        shown = await asyncio.to_thread(
            CliRunner().invoke,
            controllerctl,
            ["status", "--no-live", "--job", "shop"],
            env=dict.fromkeys(UNSET) | {"NOMAD_ADDR": twin.url},
            catch_exceptions=False,
        )
        assert f"waiting for canary promotion of deployment {dep['ID']}" in " ".join(
            shown.output.split()
        ), shown.output

        async with http.post(
            f"{twin.url}/v1/deployment/promote/{dep['ID']}",
            json={"DeploymentID": dep["ID"], "All": True},
        ) as resp:
            assert resp.status == 200, await resp.text()
        await eventually(lambda: _ready(app, "shop"), within=30, what="shop Ready")
        assert app.reconciler.writes["promote"] == 0


async def test_promote_auto_lets_the_controller_promote_its_own_deployment(
    twin: NomadTwin, user: User
) -> None:
    await stable_before_controller(
        twin,
        user,
        job_with("cart", {"mesh.tls.promote": "auto"}, Canary=1, HealthyDeadline=10_000_000_000),
    )
    async with running(settings_for(twin), tuning=TUNING) as (app, _):
        await eventually(lambda: _ready(app, "cart"), within=30, what="cart Ready")
        dep = deployments(twin, "cart")[-1]
        assert dep["Status"] == "successful"
        assert all(g["Promoted"] for g in dep["TaskGroups"].values())
        assert app.reconciler.writes["promote"] == 1
        assert injected(stored(twin, "cart"))


def dep_of(twin: NomadTwin, dep_id: str) -> dict[str, Any]:
    dep: dict[str, Any] = twin.state.deployments[dep_id]
    return dep


async def _ready(app: App, job_id: str) -> MeshStatus | None:
    """Nomad judged the controller's version healthy and the status says so. (Without a Consul
    here, health may hold the phase at Injected, "cannot tell"; never Degraded.)"""
    s = await status(app, job_id)
    rolled = s.condition(ConditionType.ROLLED_OUT) if s else None
    if s is None or rolled is None or rolled.reason != "DeploymentSuccessful":
        return None
    return s if str(s.phase) in ("Ready", "Injected") else None
