"""Contract tests: periodic and dispatched child jobs, as the Nomad leader makes them.

Pinned against nomad v1.10.0: ``nomad/periodic.go`` (``deriveJob``, ``derivedJobID``,
``dispatch``/``RunningChildren`` for prohibit_overlap, ``ForceEval``),
``nomad/periodic_endpoint.go`` ``Periodic.Force``, ``nomad/job_endpoint.go``
(``Dispatch``, ``validateDispatchRequest``, ``validateJobUpdate``, ``Evaluate``) and
``command/agent/job_endpoint.go`` (``ApiJobToStructJob`` drops ParentID/Dispatched).
Raw aiohttp for exact bodies; python-nomad for the list and dispatch calls a user makes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import aiohttp
import nomad
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.nomad.taskctx import TaskContext

pytestmark = pytest.mark.timeout(60)


class HoldDriver:
    """A batch task that runs until stopped, so a child stays non-terminal."""

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


def batch(job_id: str, driver: str = "docker", **extra: Any) -> dict[str, Any]:
    return {
        "Job": {
            "ID": job_id,
            "Type": "batch",
            "Datacenters": ["dc1"],
            "Meta": {"mesh.tls": "true"},
            "TaskGroups": [
                {
                    "Name": "work",
                    "Count": 1,
                    "Tasks": [{"Name": "run", "Driver": driver, "Config": {"image": "x"}}],
                }
            ],
            **extra,
        }
    }


FAR_SPEC = {"Spec": "0 0 1 1 *", "SpecType": "cron"}  # once a year: only forced launches


@pytest.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(nodes=1, drivers={"hold": HoldDriver()})
    yield t
    await t.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def put(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as resp:
        raw = await resp.text()
        is_json = resp.content_type == "application/json"
        return resp.status, (await resp.json() if is_json else raw)


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_force_launch_derives_a_child_and_parent_has_no_allocations(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    status, reg = await put(http, f"{twin.url}/v1/jobs", batch("cron", Periodic=FAR_SPEC))
    assert status == 200 and reg["EvalID"] == "" and reg["EvalCreateIndex"] == 0
    before = int(time.time())
    status, forced = await put(http, f"{twin.url}/v1/job/cron/periodic/force", None)
    assert status == 200
    assert list(forced) == ["EvalID", "EvalCreateIndex", "Index"]  # PeriodicForceResponse
    assert forced["EvalCreateIndex"] == forced["Index"]

    ev = await get(http, f"{twin.url}/v1/evaluation/{forced['EvalID']}")
    assert ev["TriggeredBy"] == "periodic-job"
    child_id = ev["JobID"]
    m = re.fullmatch(r"cron/periodic-(\d+)", child_id)
    assert m and before <= int(m.group(1)) <= int(time.time())

    child = await get(http, f"{twin.url}/v1/job/{child_id}")
    parent = await get(http, f"{twin.url}/v1/job/cron")
    assert child["ParentID"] == "cron" and child["Name"] == child_id
    assert child["Periodic"] is None and child["Meta"] == {"mesh.tls": "true"}
    assert child["Version"] == parent["Version"]  # deriveJob copies; upsert keeps it
    assert child["CreateIndex"] == child["JobModifyIndex"] == forced["Index"]

    listed = await get(http, f"{twin.url}/v1/jobs?prefix=cron")
    assert [(j["ID"], j["ParentID"]) for j in listed] == [("cron", ""), (child_id, "cron")]
    assert await get(http, f"{twin.url}/v1/job/cron/allocations") == []
    for _ in range(100):
        allocs = await get(http, f"{twin.url}/v1/job/{child_id}/allocations")
        if allocs and allocs[0]["ClientStatus"] == "complete":
            break
        await asyncio.sleep(0.05)
    assert allocs[0]["ClientStatus"] == "complete"
    summary = await get(http, f"{twin.url}/v1/job/cron/summary")
    assert summary["Children"] == {"Pending": 0, "Running": 0, "Dead": 1}

    status, body = await put(http, f"{twin.url}/v1/job/cron/evaluate", {})
    assert (status, body) == (500, "can't evaluate periodic job")


async def test_force_errors_follow_periodic_force(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    assert (await put(http, f"{twin.url}/v1/job/nope/periodic/force", None)) == (
        500,
        "job not found",
    )
    await put(http, f"{twin.url}/v1/jobs", batch("plain"))
    assert (await put(http, f"{twin.url}/v1/job/plain/periodic/force", None)) == (
        500,
        "can't force launch non-periodic job",
    )
    await put(http, f"{twin.url}/v1/jobs", batch("off", Periodic={**FAR_SPEC, "Enabled": False}))
    assert (await put(http, f"{twin.url}/v1/job/off/periodic/force", None)) == (
        500,
        'force launch for job "off" failed: can\'t force run non-tracked job "off" (default)',
    )
    async with http.get(f"{twin.url}/v1/job/off/periodic/force") as resp:
        assert (resp.status, await resp.text()) == (405, "Invalid method")


async def test_periodic_launches_on_schedule_and_prohibit_overlap_skips(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    every_second = {"Spec": "* * * * * * *", "SpecType": "cron", "ProhibitOverlap": True}
    status, _ = await put(http, f"{twin.url}/v1/jobs", batch("tick", "hold", Periodic=every_second))
    assert status == 200
    await asyncio.sleep(2.3)
    children = [j for j in await get(http, f"{twin.url}/v1/jobs?prefix=tick/") if j["ParentID"]]
    # The first launch holds its allocation forever: every later launch is skipped.
    assert len(children) == 1, children
    assert re.fullmatch(r"tick/periodic-\d+", children[0]["ID"])
    # A forced launch ignores prohibit_overlap (ForceEval -> createEval directly).
    status, _ = await put(http, f"{twin.url}/v1/job/tick/periodic/force", None)
    assert status == 200
    children = [j for j in await get(http, f"{twin.url}/v1/jobs?prefix=tick/") if j["ParentID"]]
    assert len(children) == 2


async def test_periodic_without_overlap_guard_launches_every_tick(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    spec = {"Specs": ["* * * * * * *"], "SpecType": "cron", "TimeZone": "Europe/Paris"}
    await put(http, f"{twin.url}/v1/jobs", batch("many", "hold", Periodic=spec))
    await asyncio.sleep(2.2)
    ids = sorted(j["ID"] for j in await get(http, f"{twin.url}/v1/jobs?prefix=many/"))
    stamps = [int(i.rsplit("-", 1)[1]) for i in ids]
    assert len(stamps) >= 2 and stamps == list(range(stamps[0], stamps[0] + len(stamps)))
    # Stopping the parent untracks it: no more launches.
    async with http.delete(f"{twin.url}/v1/job/many") as resp:
        assert resp.status == 200
    n = len(await get(http, f"{twin.url}/v1/jobs?prefix=many/"))
    await asyncio.sleep(1.5)
    assert len(await get(http, f"{twin.url}/v1/jobs?prefix=many/")) == n


async def test_dispatch_creates_a_dispatched_child(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    param = {"Payload": "required", "MetaRequired": ["who"], "MetaOptional": ["why"]}
    status, reg = await put(http, f"{twin.url}/v1/jobs", batch("task", ParameterizedJob=param))
    assert status == 200 and reg["EvalID"] == ""
    url = urlparse(twin.url)
    client = nomad.Nomad(host=url.hostname, port=url.port, timeout=5)
    before = int(time.time())
    out = await asyncio.to_thread(
        client.job.dispatch_job,
        "task",
        payload=base64.b64encode(b"hi").decode(),
        meta={"who": "me"},
    )
    assert list(out) == ["DispatchedJobID", "EvalID", "EvalCreateIndex", "JobCreateIndex", "Index"]
    m = re.fullmatch(r"task/dispatch-(\d+)-([0-9a-f]{8})", out["DispatchedJobID"])
    assert m and before <= int(m.group(1)) <= int(time.time())
    assert out["EvalCreateIndex"] == out["Index"] == out["JobCreateIndex"] + 1
    child = await get(http, f"{twin.url}/v1/job/{out['DispatchedJobID']}")
    assert child["ParentID"] == "task" and child["Dispatched"] is True
    assert child["Meta"] == {"mesh.tls": "true", "who": "me"}
    assert child["ParameterizedJob"] == {**param}  # the child keeps the block
    assert base64.b64decode(child["Payload"]) == b"hi"
    ev = await get(http, f"{twin.url}/v1/evaluation/{out['EvalID']}")
    assert (ev["TriggeredBy"], ev["JobModifyIndex"]) == ("job-register", out["JobCreateIndex"])
    assert await get(http, f"{twin.url}/v1/job/task/allocations") == []
    status, body = await put(http, f"{twin.url}/v1/job/task/evaluate", {})
    assert (status, body) == (500, "can't evaluate parameterized job")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"Meta": {"who": "a"}}, "Payload is not provided but required by parameterized job"),
        (
            {"Meta": {"who": "a", "x": "1"}, "Payload": "aGk="},
            "Dispatch request included unpermitted metadata keys: [x]",
        ),
        ({"Payload": "aGk="}, "Dispatch did not provide required meta keys: [who]"),
        (
            {"Meta": {"who": "a"}, "Payload": base64.b64encode(b"x" * 16385).decode()},
            "Payload exceeds maximum size; 16385 > 16384",
        ),
    ],
)
async def test_dispatch_request_is_validated(
    twin: NomadTwin, http: aiohttp.ClientSession, body: dict[str, Any], error: str
) -> None:
    param = {"Payload": "required", "MetaRequired": ["who"]}
    await put(http, f"{twin.url}/v1/jobs", batch("task", ParameterizedJob=param))
    assert (await put(http, f"{twin.url}/v1/job/task/dispatch", body)) == (500, error)


async def test_dispatch_errors(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    assert (await put(http, f"{twin.url}/v1/job/nope/dispatch", {})) == (
        500,
        "parameterized job not found",
    )
    await put(http, f"{twin.url}/v1/jobs", batch("plain"))
    assert (await put(http, f"{twin.url}/v1/job/plain/dispatch", {})) == (
        500,
        'Specified job "plain" is not a parameterized job',
    )
    assert (await put(http, f"{twin.url}/v1/job/plain/dispatch", {"JobID": "other"})) == (
        400,
        "Job ID does not match",
    )
    await put(
        http, f"{twin.url}/v1/jobs", batch("forbid", ParameterizedJob={"Payload": "forbidden"})
    )
    assert (await put(http, f"{twin.url}/v1/job/forbid/dispatch", {"Payload": "aGk="})) == (
        500,
        "Payload provided but forbidden by parameterized job",
    )


async def test_reregistering_children_is_refused_or_detaches(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    """What a controller that GETs a child and POSTs it back meets (audit §1)."""
    await put(http, f"{twin.url}/v1/jobs", batch("task", ParameterizedJob={}))
    _, out = await put(http, f"{twin.url}/v1/job/task/dispatch", {})
    child = await get(http, f"{twin.url}/v1/job/{out['DispatchedJobID']}")
    child["Meta"]["touched"] = "1"
    status, body = await put(http, f"{twin.url}/v1/job/{child['ID']}", {"Job": child})
    # ApiJobToStructJob dropped Dispatched, so the child looks parameterized again.
    assert (status, body) == (500, "cannot update non-parameterized job to being parameterized")

    await put(http, f"{twin.url}/v1/jobs", batch("cron", Periodic=FAR_SPEC))
    _, forced = await put(http, f"{twin.url}/v1/job/cron/periodic/force", None)
    ev = await get(http, f"{twin.url}/v1/evaluation/{forced['EvalID']}")
    periodic_child = await get(http, f"{twin.url}/v1/job/{ev['JobID']}")
    status, _ = await put(http, f"{twin.url}/v1/job/{ev['JobID']}", {"Job": periodic_child})
    assert status == 200
    detached = await get(http, f"{twin.url}/v1/job/{ev['JobID']}")
    assert detached["ParentID"] == "" and detached["Version"] == periodic_child["Version"] + 1

    status, body = await put(
        http, f"{twin.url}/v1/job/cron", {"Job": {**batch("cron")["Job"], "Periodic": None}}
    )
    assert (status, body) == (500, "cannot update periodic job to being non-periodic")
    status, body = await put(
        http, f"{twin.url}/v1/jobs", {"Job": {**batch("fresh")["Job"], "Dispatched": True}}
    )
    assert status == 200  # the decode drops Dispatched before validateJobUpdate sees it
    assert (await get(http, f"{twin.url}/v1/job/fresh"))["Dispatched"] is False


async def test_periodic_and_parameterized_validation(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    svc = batch("svc", Periodic=FAR_SPEC)
    svc["Job"]["Type"] = "service"
    status, body = await put(http, f"{twin.url}/v1/jobs", svc)
    assert status == 500
    assert body == (
        '1 error occurred:\n\t* Periodic can only be used with "batch" or "sysbatch" scheduler\n\n'
    )
    status, body = await put(
        http,
        f"{twin.url}/v1/jobs",
        batch("both", Periodic={"Spec": "* * * * *", "Specs": ["* * * * *"]}),
    )
    assert (status, body) == (
        500,
        "1 error occurred:\n\t* 1 error occurred:\n\t* Only cron or crons may be used\n\n\n\n",
    )


async def test_children_appear_in_the_event_stream(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await put(http, f"{twin.url}/v1/jobs", batch("task", ParameterizedJob={}))
    _, out = await put(http, f"{twin.url}/v1/job/task/dispatch", {})
    index = out["JobCreateIndex"]
    async with http.get(
        f"{twin.url}/v1/event/stream?topic=Job&index={index}", timeout=aiohttp.ClientTimeout(5)
    ) as resp:
        async for line in resp.content:
            if line.strip() in (b"", b"{}"):
                continue
            frame = json.loads(line)
            events = frame["Events"]
            break
    job_events = [e for e in events if e["Key"] == out["DispatchedJobID"]]
    assert job_events[0]["Type"] == "JobRegistered"
    assert job_events[0]["Payload"]["Job"]["ParentID"] == "task"
