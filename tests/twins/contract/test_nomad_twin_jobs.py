"""Contract tests: the twin's jobs API against python-nomad and raw aiohttp.

Held to the Nomad 1.10 wire facts (status codes, plain-text errors, headers, register
semantics). python-nomad is synchronous, so its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any
from urllib.parse import urlparse

import aiohttp
import nomad
import pytest

from devstack.nomad import NomadTwin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def job(job_id: str = "web", count: int = 1, **group_extra: Any) -> dict[str, Any]:
    group = {
        "Name": "app",
        "Count": count,
        "Update": {"MaxParallel": 1, "MinHealthyTime": 0},
        "Tasks": [{"Name": "srv", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}],
        **group_extra,
    }
    return {
        "Job": {
            "ID": job_id,
            "Name": job_id,
            "Type": "service",
            "Datacenters": ["dc1"],
            "Meta": {"team": "a"},
            "TaskGroups": [group],
        }
    }


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(heartbeat_interval=0.2)


def pyn(twin: NomadTwin) -> nomad.Nomad:
    url = urlparse(twin.url)
    return nomad.Nomad(host=url.hostname, port=url.port, timeout=5)


async def test_python_nomad_register_list_read_versions_stop(twin: NomadTwin) -> None:
    n = pyn(twin)
    resp = await asyncio.to_thread(n.jobs.register_job, job())
    assert resp["EvalID"] and resp["JobModifyIndex"] == resp["Index"]
    listed = await asyncio.to_thread(n.jobs.get_jobs)
    assert [j["ID"] for j in listed] == ["web"]
    assert "Meta" not in listed[0]
    with_meta = await asyncio.to_thread(n.jobs.get_jobs, meta=True)
    assert with_meta[0]["Meta"] == {"team": "a"}
    got = await asyncio.to_thread(n.job.get_job, "web")
    assert got["Version"] == 0 and got["JobModifyIndex"] == resp["JobModifyIndex"]
    changed = job()
    changed["Job"]["Meta"] = {"team": "b"}
    await asyncio.to_thread(n.job.register_job, "web", changed)
    versions = await asyncio.to_thread(n.job.get_versions, "web")
    assert [v["Version"] for v in versions["Versions"]] == [1, 0]
    stop = await asyncio.to_thread(n.job.deregister_job, "web")
    assert stop["EvalID"]
    stopped = await asyncio.to_thread(n.job.get_job, "web")
    assert stopped["Stop"] is True and stopped["Version"] == 2
    await asyncio.to_thread(n.job.deregister_job, "web", purge=True)
    with pytest.raises(nomad.api.exceptions.URLNotFoundNomadException):
        await asyncio.to_thread(n.job.get_job, "web")


async def test_unchanged_spec_makes_no_new_version(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    first = await (await http.post(f"{twin.url}/v1/jobs", json=job())).json()
    stored = await (await http.get(f"{twin.url}/v1/job/web")).json()
    again = await http.put(f"{twin.url}/v1/job/web", json=job())
    body = await again.json()
    assert again.status == 200
    assert list(body) == [
        "EvalID",
        "EvalCreateIndex",
        "JobModifyIndex",
        "Warnings",
        "Index",
        "LastContact",
        "KnownLeader",
        "NextToken",
    ]
    assert body["EvalID"] and body["EvalID"] != first["EvalID"]
    assert (
        body["JobModifyIndex"] == stored["JobModifyIndex"]
    )  # Job.Register: existingJob.JobModifyIndex
    assert body["Index"] == body["EvalCreateIndex"]
    after = await (await http.get(f"{twin.url}/v1/job/web")).json()
    assert after["Version"] == 0 and after["JobModifyIndex"] == first["JobModifyIndex"]


async def test_enforce_index_errors_are_500_plain_text(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    def enforced(index: int, meta: str) -> dict[str, Any]:
        body = job()
        body["Job"]["Meta"] = {"v": meta}
        return {**body, "EnforceIndex": True, "JobModifyIndex": index}

    missing = await http.post(f"{twin.url}/v1/jobs", json=enforced(17, "a"))
    assert missing.status == 500
    assert await missing.text() == "Enforcing job modify index 17: job does not exist"
    assert missing.headers["Content-Type"] == "text/plain; charset=utf-8"
    created = await http.post(f"{twin.url}/v1/jobs", json=enforced(0, "a"))
    jmi = (await created.json())["JobModifyIndex"]
    exists = await http.post(f"{twin.url}/v1/jobs", json=enforced(0, "b"))
    assert (exists.status, await exists.text()) == (
        500,
        "Enforcing job modify index 0: job already exists",
    )
    stale = await http.post(f"{twin.url}/v1/jobs", json=enforced(jmi - 1, "b"))
    assert (stale.status, await stale.text()) == (
        500,
        f"Enforcing job modify index {jmi - 1}: job exists with conflicting job modify "
        f"index: {jmi}",
    )
    ok = await http.post(f"{twin.url}/v1/jobs", json=enforced(jmi, "b"))
    assert ok.status == 200


async def test_request_errors(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/v1/jobs", b"", 400, "Request body is empty"),
        ("POST", "/v1/jobs", {"EnforceIndex": False}, 400, "Job must be specified"),
        ("POST", "/v1/jobs", {"Job": {"Name": "x"}}, 400, "Job ID hasn't been provided"),
        ("POST", "/v1/job/other", job(), 400, "Job ID does not match name"),
        ("GET", "/v1/job/nope", None, 404, "job not found"),
        ("GET", "/v1/job/nope/summary", None, 404, "job not found"),
        ("GET", "/v1/job/nope/versions", None, 404, "job versions not found"),
        ("PATCH", "/v1/jobs", None, 405, "Invalid method"),
        ("GET", "/v1/no/such/route", None, 404, ""),
        ("GET", "/v1/jobs?wait=soon&index=1", None, 400, "Invalid wait time"),
        ("GET", "/v1/jobs?index=x", None, 400, "Invalid index"),
        ("POST", "/v1/jobs/parse", {"JobHCL": "job {}"}, 400, ""),
    ]
    dur = job()
    dur["Job"]["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = "10s"
    cases.append(
        (
            "POST",
            "/v1/jobs",
            dur,
            400,
            "json: cannot unmarshal string into Go struct "
            "field Task.Job.TaskGroups.Tasks.KillTimeout of type time.Duration",
        )
    )
    for method, path, body, status, message in cases:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        resp = await http.request(method, twin.url + path, **kwargs)
        got = await resp.text()
        assert resp.status == status, (method, path, got)
        if path == "/v1/jobs/parse":
            assert "JSON jobs only" in got
        else:
            assert got == message, (method, path)


async def test_delete_missing_job_is_200_zero_values(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    resp = await http.delete(f"{twin.url}/v1/job/ghost")
    assert resp.status == 200
    assert await resp.json() == {
        "EvalID": "",
        "EvalCreateIndex": 0,
        "JobModifyIndex": 0,
        "VolumeEvalID": "",
        "VolumeEvalIndex": 0,
        "Index": 0,
        "LastContact": 0,
        "KnownLeader": False,
        "NextToken": "",
    }


async def test_list_headers_pagination_and_namespaces(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await http.post(f"{twin.url}/v1/namespace/prod", json={"Name": "prod"})
    for jid in ("c", "a", "b"):
        await http.post(f"{twin.url}/v1/jobs", json=job(jid))
    prod = job("a")
    prod["Job"]["Namespace"] = "prod"
    await http.post(f"{twin.url}/v1/jobs", json=prod)
    first = await http.get(f"{twin.url}/v1/jobs?per_page=2")
    assert [j["ID"] for j in await first.json()] == ["a", "b"]
    raw_names = [k for k, _ in first.raw_headers]
    assert b"X-Nomad-Knownleader" in raw_names and b"X-Nomad-Lastcontact" in raw_names
    assert first.headers["X-Nomad-Nexttoken"] == "default.c"
    assert int(first.headers["X-Nomad-Index"]) >= 1
    second = await http.get(f"{twin.url}/v1/jobs?per_page=2&next_token=default.c")
    assert [j["ID"] for j in await second.json()] == ["c"]
    assert "X-Nomad-Nexttoken" not in second.headers
    every = await (await http.get(f"{twin.url}/v1/jobs?namespace=*")).json()
    assert [(j["Namespace"], j["ID"]) for j in every] == [
        ("default", "a"),
        ("default", "b"),
        ("default", "c"),
        ("prod", "a"),
    ]
    prefixed = await (await http.get(f"{twin.url}/v1/jobs?prefix=b")).json()
    assert [j["ID"] for j in prefixed] == ["b"]
    missing_ns = await http.post(f"{twin.url}/v1/jobs?namespace=nope", json=job("z"))
    assert (missing_ns.status, await missing_ns.text()) == (
        500,
        'job "z" is in nonexistent namespace "nope"',
    )


async def test_blocking_query_returns_on_change_or_timeout(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    resp = await http.get(f"{twin.url}/v1/jobs")
    index = int(resp.headers["X-Nomad-Index"])
    timed = await http.get(f"{twin.url}/v1/jobs?index={index}&wait=100ms")
    assert int(timed.headers["X-Nomad-Index"]) == index
    waiter = asyncio.ensure_future(http.get(f"{twin.url}/v1/jobs?index={index}&wait=30s"))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await http.post(f"{twin.url}/v1/jobs", json=job())
    woke = await asyncio.wait_for(waiter, 5)
    assert int(woke.headers["X-Nomad-Index"]) > index
    assert [j["ID"] for j in await woke.json()] == ["web"]


async def test_job_read_has_canonical_fields(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    body = job(Networks=[{"DynamicPorts": [{"Label": "http", "To": 8080}]}])
    body["Job"]["TaskGroups"][0]["Tasks"][0]["Templates"] = [
        {"DestPath": "secrets/c.pem", "EmbeddedTmpl": "x", "ChangeMode": "signal"}
    ]
    await http.post(f"{twin.url}/v1/jobs", json=body)
    stored = await (await http.get(f"{twin.url}/v1/job/web")).json()
    group = stored["TaskGroups"][0]
    assert group["Networks"][0]["DynamicPorts"] == [
        {"Label": "http", "To": 8080, "HostNetwork": "default"}
    ]
    tmpl = group["Tasks"][0]["Templates"][0]
    assert (tmpl["ChangeSignal"], tmpl["Splay"], tmpl["Perms"]) == ("SIGHUP", 5000000000, "0644")
    assert stored["Status"] in ("pending", "running")
    assert stored["SubmitTime"] > 0


async def test_plan_annotations_and_diff(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    await http.post(f"{twin.url}/v1/jobs", json=job(count=2))
    await _wait_running(twin, http, "web", 2)
    changed = copy.deepcopy(job(count=2))
    changed["Job"]["TaskGroups"][0]["Tasks"][0]["Env"] = {"A": "1"}
    changed["Job"]["Meta"] = {"version": "2"}
    resp = await http.post(f"{twin.url}/v1/job/web/plan", json={**changed, "Diff": True})
    plan = await resp.json()
    assert resp.status == 200
    updates = plan["Annotations"]["DesiredTGUpdates"]["app"]
    assert updates["DestructiveUpdate"] == 1 and updates["Ignore"] == 1  # MaxParallel 1
    assert plan["Diff"]["Type"] == "Edited"
    group = plan["Diff"]["TaskGroups"][0]
    assert group["Name"] == "app" and group["Type"] == "Edited"
    assert group["Tasks"][0]["Type"] == "Edited"
    # maps of strings are flattened into the owner's fields (helper/flatmap), not objects
    fields = [(f["Type"], f["Name"], f["Old"], f["New"]) for f in plan["Diff"]["Fields"] or []]
    assert ("Added", "Meta[version]", "", "2") in fields
    assert not any(o["Name"] == "Meta" for o in plan["Diff"]["Objects"] or [])
    task_fields = [(f["Type"], f["Name"], f["New"]) for f in group["Tasks"][0]["Fields"]]
    assert ("Added", "Env[A]", "1") in task_fields
    assert plan["NextPeriodicLaunch"] is None
    stored = await (await http.get(f"{twin.url}/v1/job/web")).json()
    assert plan["JobModifyIndex"] == stored["JobModifyIndex"]


async def _wait_running(twin: NomadTwin, http: aiohttp.ClientSession, jid: str, count: int) -> None:
    async def running() -> bool:
        allocs = await (await http.get(f"{twin.url}/v1/job/{jid}/allocations")).json()
        return sum(a["ClientStatus"] == "running" for a in allocs) >= count

    await eventually(running, within=4.0, every=0.02, what=f"{count} allocations of {jid} running")
