"""The controller's Nomad call budget with the watch-fed cache, counted against the twin.

The contract's minimum per job (issue 16): a newly meshed job costs its GET during the fill
(none when its Job event carried it) and its register; a no-op event costs no call; a resync
of converged jobs writes nothing and reads only the jobs whose JobModifyIndex moved. Status
Variables are the status store's budget, counted apart (``job_api`` leaves them out)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio

from controller.app import App
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionStatus, ConditionType
from devstack.nomad import NomadTwin
from devstack.testing import User, injected, running, settings_for, stored, user_job, versions
from tests.support.nomad_calls import NomadCalls, counting_nomad_calls
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

LISTS = {"GET /v1/jobs", "GET /v1/allocations", "GET /v1/deployments"}


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=2, heartbeat_interval=0.2)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[NomadCalls]:
    with counting_nomad_calls(monkeypatch) as counted:
        yield counted


def meshed(job_id: str) -> dict[str, Any]:
    """A meshed service job without Consul checks (this harness runs no Consul; Nomad judges
    the deployment by task states)."""
    job = user_job(job_id, {"mesh.tls": "true"})
    for group in job["TaskGroups"]:
        for service in group.get("Services") or []:
            service.pop("Checks", None)
    return job


async def rolled_out_at(app: App, job_id: str, index: int | None = None) -> bool:
    """Recorded as rolled out, for the stored version at ``index`` when given."""
    status = await app.statuses.get("default", job_id)
    if status is None or (index is not None and status.observed_index != index):
        return False
    c = status.condition(ConditionType.ROLLED_OUT)
    return c is not None and c.status == ConditionStatus.TRUE


def quiet(app: App, twin: NomadTwin, job_id: str) -> bool:
    job = stored(twin, job_id)
    return (
        job is not None
        and app.source.last_index >= job["ModifyIndex"]
        and len(app.queue) == 0
        and not app.queue.in_flight
    )


def not_lock(counted: dict[str, int]) -> dict[str, int]:
    """Writes other than the leader lock's renewals."""
    return {k: v for k, v in counted.items() if "mesh-controller/leader" not in k}


async def test_a_job_meshed_before_start_costs_its_fill_get_and_its_register(
    twin: NomadTwin, user: User, calls: NomadCalls
) -> None:
    await user.submit(meshed("web"))
    await user.submit(user_job("plain", {}))
    async with running(settings_for(twin)) as (app, _):
        await eventually(lambda: injected(stored(twin, "web")), what="web injected")
        await eventually(lambda: rolled_out_at(app, "web"), what="web rolled out")
        await eventually(lambda: quiet(app, twin, "web"), what="settled")
        job_api = calls.job_api(app.nomad)
        per_job = {k: v for k, v in job_api.items() if k not in LISTS}
        assert per_job == {"GET /v1/job/web": 1, "POST /v1/job/web": 1, "GET /v1/job/plain": 1}
        assert app.cache.job(JobKey("default", "plain")) is None  # judged, not kept


async def test_a_job_submitted_while_running_costs_its_register_and_a_no_op_event_nothing(
    twin: NomadTwin, user: User, calls: NomadCalls
) -> None:
    async with running(settings_for(twin)) as (app, _):
        mark = calls.mark()
        await user.submit(meshed("api"))
        await eventually(lambda: rolled_out_at(app, "api"), what="api rolled out")
        await eventually(lambda: quiet(app, twin, "api"), what="settled")
        assert calls.job_api(app.nomad, mark) == {"POST /v1/job/api": 1}

        # CI submits the injected spec with a new image: a Job event to look at, and leave.
        ci = await user.get("api")
        ci["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = ["--release", "2"]
        mark = calls.mark()
        index = await user.submit(ci)
        await eventually(lambda: rolled_out_at(app, "api", index), what="CI version rolled out")
        await eventually(lambda: quiet(app, twin, "api"), what="settled again")
        assert calls.job_api(app.nomad, mark) == {}
        assert versions(twin, "api") == [0, 1, 2]


async def test_a_resync_of_converged_jobs_writes_nothing_and_reads_only_moved_jobs(
    twin: NomadTwin, user: User, calls: NomadCalls
) -> None:
    ids = ["a", "b", "c"]
    async with running(settings_for(twin)) as (app, _):
        for job_id in ids:
            await user.submit(meshed(job_id))
        for job_id in ids:
            await eventually(lambda j=job_id: rolled_out_at(app, j), what=f"{job_id} rolled out")
            await eventually(lambda j=job_id: quiet(app, twin, j), what=f"{job_id} settled")
        # As if the stream had missed b's last change: the cache holds an older b.
        moved = app.cache.jobs[JobKey("default", "b")]
        moved.index = moved.modify_index = 1
        mark = calls.mark()
        await app.source.list_and_enqueue()
        await eventually(lambda: all(quiet(app, twin, j) for j in ids), what="resync handled")
        reads = {k: v for k, v in calls.job_api(app.nomad, mark).items() if k not in LISTS}
        assert reads == {"GET /v1/job/b": 1}
        assert not_lock(calls.writes(app.nomad, mark)) == {}
