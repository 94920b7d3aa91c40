"""Periodic and dispatched children of a meshed parent, on the strict Nomad twin (audit §1).

The twin launches children the way the Nomad leader does (``devstack/nomad/children.py``,
held to ``nomad/periodic.go`` ``deriveJob`` and ``nomad/job_endpoint.go`` ``Job.Dispatch``):
the controller injects the parent once, every child inherits the sidecar from it, and the
controller never writes a child — each child keeps the single version Nomad created it with
and its ``ParentID``.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from controller.app import App
from crds_equivalent import keys
from devstack.nomad import NomadTwin
from devstack.nomad.taskctx import TaskContext
from devstack.testing import User, injected, running, settings_for, stored, user_job, versions
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

FAR = {"Enabled": True, "Spec": "0 0 1 1 *", "SpecType": "cron"}  # only forced launches


class HoldDriver:
    """The app task runs until stopped, so a child stays running and is an instance."""

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async def stop(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async def signal(
        self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext, signal: str
    ) -> None:
        return None

    async def restart(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        return None


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=2, heartbeat_interval=0.2, drivers={"hold": HoldDriver()})


def batch_parent(job_id: str, **blocks: Any) -> dict[str, Any]:
    job = copy.deepcopy(user_job(job_id, {"mesh.tls": "true"}))
    job["Type"] = "batch"
    group = job["TaskGroups"][0]
    group.pop("Update")
    group["Tasks"][0]["Driver"] = "hold"
    job.update(blocks)
    return job


def children(twin: NomadTwin, parent: str) -> list[dict[str, Any]]:
    return [j for (_, _), j in twin.state.jobs.items() if j.get("ParentID") == parent]


async def post(twin: NomadTwin, path: str, body: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{twin.url}{path}", json=body) as r:
        assert r.status == 200, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


def running_children(twin: NomadTwin, parent: str) -> int:
    ids = {c["ID"] for c in children(twin, parent)}
    return sum(
        1
        for a in twin.state.allocs.values()
        if a["JobID"] in ids and a["ClientStatus"] == "running"
    )


async def next_second() -> None:
    start = int(time.time())
    await eventually(lambda: int(time.time()) > start, within=2.0, what="next second")


async def settled(app: App, twin: NomadTwin) -> bool:
    return app.source.last_index >= twin.state.index and not len(app.queue)


async def test_periodic_parent_is_injected_once_and_five_launches_get_no_write(
    twin: NomadTwin, user: User
) -> None:
    async with running(settings_for(twin)) as (app, _):
        await user.submit(batch_parent("nightly", Periodic=FAR))
        await eventually(lambda: injected(stored(twin, "nightly")), what="parent injected")
        assert versions(twin, "nightly") == [0, 1]

        for n in range(5):
            await next_second()  # a child's ID is the launch's Unix second (derivedJobID)
            await post(twin, "/v1/job/nightly/periodic/force", None)
            want = n + 1
            await eventually(
                lambda want=want: len(children(twin, "nightly")) == want, what="launch"
            )
        await eventually(lambda: running_children(twin, "nightly") == 5, what="5 running")
        await eventually(lambda: settled(app, twin), what="controller settled")

        kids = children(twin, "nightly")
        assert len(kids) == 5
        for child in kids:
            assert injected(child), child["ID"]  # inherited from the parent
            assert child["ParentID"] == "nightly"
            assert versions(twin, child["ID"]) == [
                1
            ]  # created at the parent's version, never again
            assert child["JobModifyIndex"] == child["CreateIndex"]
            assert await app.statuses.get("default", child["ID"]) is None
        assert app.reconciler.writes == {"apply": 1}
        assert versions(twin, "nightly") == [0, 1]

        record = await app.statuses.get("default", "nightly")
        assert record is not None and record.sidecar_injected
        rolled = {c.type: c for c in record.conditions}
        assert str(rolled["RolledOut"].reason) == "LaunchesChildren"
        instances = await app.jobs.child_allocations("nightly", "default")
        assert sum(1 for a in instances if a["ClientStatus"] == "running") == 5
        # Each child's allocation was placed with the sidecar the parent carries (the twin's
        # simulated docker task of a batch job exits on its own, so its state is not asserted).
        assert all(keys.SIDECAR_TASK in (a.get("TaskStates") or {}) for a in instances)


async def test_dispatched_children_are_never_written(twin: NomadTwin, user: User) -> None:
    async with running(settings_for(twin)) as (app, _):
        param = {"Payload": "optional", "MetaOptional": ["who"]}
        await user.submit(batch_parent("task", ParameterizedJob=param))
        await eventually(lambda: injected(stored(twin, "task")), what="parent injected")
        ids = []
        for who in ("a", "b", "c"):
            answer = await post(twin, "/v1/job/task/dispatch", {"Meta": {"who": who}})
            ids.append(answer["DispatchedJobID"])
        await eventually(lambda: running_children(twin, "task") == 3, what="3 running")
        await eventually(lambda: settled(app, twin), what="controller settled")

        for child_id in ids:
            child = stored(twin, child_id)
            assert child is not None and injected(child)
            assert child["Dispatched"] is True and child["ParentID"] == "task"
            assert versions(twin, child_id) == [1]
        assert app.reconciler.writes == {"apply": 1}
        assert sorted(k.job_id for k in app.source.tracked) == ["task"]
