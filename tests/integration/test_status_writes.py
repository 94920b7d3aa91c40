"""What the controller's status records cost at Nomad: the whole controller in-process against
the Nomad twin, with the twin counting every status Variable call it serves.

- A resync of converged jobs writes no status Variable (and reads none: the LIST confirms the
  cache) — in Nomad's words, Variables are for small, slowly changing data.
- A burst of changes to one record within a second becomes one or two writes.
- A newly meshed job's status is never read from Nomad: the LIST said it has no record.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from controller.app import App
from controller.nomad.variables import NomadVariables
from controller.status.store import path_for
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionStatus, ConditionType, MeshStatus
from devstack.nomad import NomadTwin
from devstack.testing import FAST, User, running, settings_for, user_job
from tests.support.twins import NomadTwinFactory
from tests.support.var_calls import VarCalls
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

JOBS = [f"svc{i}" for i in range(6)]
TUNING = dataclasses.replace(FAST, health_delay=0.2)
EVERY_CONDITION = frozenset(ConditionType)


@pytest.fixture
def calls() -> VarCalls:
    return VarCalls()


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory, calls: VarCalls) -> NomadTwin:
    return await make_nomad_twin(nodes=2, heartbeat_interval=0.2, middlewares=[calls.middleware])


def service_job(job_id: str, count: int) -> dict[str, Any]:
    """A meshed service without Consul checks: this harness runs no Consul, and Nomad would
    judge the deployment by them (it never succeeds); without them, by task states."""
    job = user_job(job_id, {"mesh.tls": "true"}, count=count)
    for group in job["TaskGroups"]:
        for service in group.get("Services") or []:
            service.pop("Checks", None)
    return job


def converged(status: MeshStatus | None) -> bool:
    """Rolled out, and every reconciler has had its say (health's conditions are there)."""
    if status is None or {c.type for c in status.conditions} != EVERY_CONDITION:
        return False
    rolled = status.condition(ConditionType.ROLLED_OUT)
    return rolled is not None and rolled.status == ConditionStatus.TRUE


def count_reconciles(app: App) -> tuple[Counter[JobKey], Counter[JobKey]]:
    """From now on, how often the mesh and the health reconciler finished each key."""
    mesh, health = Counter[JobKey](), Counter[JobKey]()
    for reconciler, seen in ((app.reconciler, mesh), (app.health, health)):
        original: Callable[[JobKey], Awaitable[Any]] = reconciler.reconcile

        async def counted(key: JobKey, original: Any = original, seen: Any = seen) -> Any:
            result = await original(key)
            seen[key] += 1
            return result

        reconciler.reconcile = counted  # type: ignore[method-assign]
    return mesh, health


async def all_converged(app: App) -> bool:
    return all([converged(await app.statuses.get("default", j)) for j in JOBS])


async def test_a_resync_of_converged_jobs_writes_no_status(
    twin: NomadTwin, user: User, calls: VarCalls
) -> None:
    settings = settings_for(twin, MESH_HEALTH_INTERVAL="1s")
    async with running(settings, tuning=TUNING) as (app, _):
        for n, job_id in enumerate(JOBS):
            await user.submit(service_job(job_id, count=1 + n % 2))
        await eventually(lambda: all_converged(app), within=60, what="every job converged")
        await app.statuses.flush()
        mesh, health = count_reconciles(app)
        before = Counter(calls.calls)

        await app.source.list_and_enqueue()  # what the periodic resync and a reconnect run
        keys = [JobKey("default", j) for j in JOBS]
        await eventually(
            lambda: all(mesh[k] >= 1 and health[k] >= 2 for k in keys),
            within=30,
            what="every job reconciled by mesh and (twice) by health after the resync",
        )
        await app.statuses.flush()

        spent = calls.calls - before
        assert spent["PUT"] == 0 and spent["DELETE"] == 0, spent
        assert spent["GET"] == 0, spent  # the LIST confirmed every cached record
        assert spent["LIST"] == 1


async def test_a_burst_of_changes_to_one_record_is_one_or_two_writes(
    twin: NomadTwin, user: User, calls: VarCalls
) -> None:
    async with running(settings_for(twin), tuning=TUNING) as (app, _):
        for n in range(20):
            await app.statuses.update(
                "default",
                "burst",
                lambda p, n=n: (p or MeshStatus()).model_copy(update={"message": f"step {n}"}),
            )
        path = path_for("default", "burst")
        variables = NomadVariables(user.client)

        async def last_written() -> bool:
            var = await variables.get(path)
            return var is not None and var.items.get("message") == "step 19"

        await eventually(last_written, within=10, what="the last content written")
        assert calls.by_path[("PUT", path)] in (1, 2)


async def test_a_newly_meshed_job_never_reads_its_status_from_nomad(
    twin: NomadTwin, user: User, calls: VarCalls
) -> None:
    async with running(settings_for(twin, MESH_HEALTH_INTERVAL="1s"), tuning=TUNING) as (app, _):
        for job_id in JOBS:
            await user.submit(service_job(job_id, count=1))
        await eventually(lambda: all_converged(app), within=60, what="every job converged")
        await app.statuses.flush()
        gets = {j: calls.by_path[("GET", path_for("default", j))] for j in JOBS}
        puts = {j: calls.by_path[("PUT", path_for("default", j))] for j in JOBS}
        assert gets == dict.fromkeys(JOBS, 0)
        assert all(puts.values())


async def test_a_graceful_stop_writes_what_the_window_held_back(
    twin: NomadTwin, user: User
) -> None:
    settings = settings_for(twin, MESH_STATUS_WRITE_INTERVAL="1h")
    async with running(settings, tuning=TUNING) as (app, task):
        for text in ("first", "held back"):
            await app.statuses.update(
                "default",
                "stopping",
                lambda p, text=text: (p or MeshStatus()).model_copy(update={"message": text}),
            )
        app.request_stop()
        assert await task == 0
    var = await NomadVariables(user.client).get(path_for("default", "stopping"))
    assert var is not None and var.items["message"] == "held back"
