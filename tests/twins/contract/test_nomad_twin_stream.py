"""Contract tests: GET /v1/event/stream framing, filters, index semantics, ACL, faults."""

from __future__ import annotations

import asyncio
import json
import queue
from typing import Any
from urllib.parse import urlparse

import aiohttp
import nomad
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin
from tests.support.twins import NomadTwinFactory

pytestmark = pytest.mark.timeout(60)
EVENT_KEYS = ["Topic", "Type", "Key", "Namespace", "FilterKeys", "Index", "Payload"]


def job(job_id: str) -> dict[str, Any]:
    return {
        "Job": {
            "ID": job_id,
            "TaskGroups": [
                {
                    "Name": "app",
                    "Update": {"MinHealthyTime": 0},
                    "Tasks": [{"Name": "srv", "Driver": "exec"}],
                }
            ],
        }
    }


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(heartbeat_interval=0.2)


async def read_frames(resp: aiohttp.ClientResponse, count: int) -> list[Any]:
    out: list[Any] = []
    async with asyncio.timeout(5):
        while len(out) < count:
            line = await resp.content.readline()
            assert line.endswith(b"\n"), line
            out.append(json.loads(line))
    return out


async def data_frames(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while len(out) < count:
            frame = json.loads(await resp.content.readline())
            if frame:
                out.append(frame)
    return out


async def test_first_line_heartbeats_and_chunked_ndjson(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{twin.url}/v1/event/stream?topic=Job") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["Cache-Control"] == "no-cache"
        assert await read_frames(resp, 3) == [{}, {}, {}]  # initial + heartbeats


async def test_one_frame_per_index_all_seven_keys_and_no_job_in_alloc(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await http.post(f"{twin.url}/v1/jobs", json=job("web"))
    async with http.get(
        f"{twin.url}/v1/event/stream?index=0&topic=Job:web&topic=Allocation:web"
        "&topic=Evaluation&topic=Deployment"
    ) as resp:
        frames = await data_frames(resp, 4)
    indexes = [f["Index"] for f in frames]
    assert indexes == sorted(set(indexes))
    first = frames[0]
    assert [e["Topic"] for e in first["Events"]] == ["Job", "Evaluation"]
    assert {e["Type"] for e in first["Events"]} == {"JobRegistered"}
    for frame in frames:
        for event in frame["Events"]:
            assert list(event) == EVENT_KEYS
            assert event["Index"] == frame["Index"]
            if event["Topic"] == "Allocation":
                assert "Job" not in event["Payload"]["Allocation"]
                assert event["FilterKeys"][0] == "web"
            if event["Topic"] == "Job":
                assert event["FilterKeys"] is None
    placed = next(f for f in frames if any(e["Topic"] == "Allocation" for e in f["Events"]))
    assert {e["Type"] for e in placed["Events"]} == {"PlanResult"}


async def test_topic_key_filter_and_namespace_filter(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await http.post(f"{twin.url}/v1/namespace/prod", json={"Name": "prod"})
    for jid in ("web", "db"):
        await http.post(f"{twin.url}/v1/jobs", json=job(jid))
    prod = job("web")
    prod["Job"]["Namespace"] = "prod"
    await http.post(f"{twin.url}/v1/jobs", json=prod)
    async with http.get(f"{twin.url}/v1/event/stream?topic=Job:db") as resp:
        frames = await data_frames(resp, 1)
    assert {e["Key"] for f in frames for e in f["Events"]} == {"db"}
    seen: set[tuple[str, str]] = set()
    async with http.get(f"{twin.url}/v1/event/stream?topic=Job&namespace=*") as resp:
        while ("prod", "web") not in seen:
            frames = await data_frames(resp, 1)
            seen |= {(e["Namespace"], e["Key"]) for f in frames for e in f["Events"]}
    assert ("default", "db") in seen
    async with http.get(f"{twin.url}/v1/event/stream?topic=Job&namespace=prod") as resp:
        frames = await data_frames(resp, 1)
    assert {e["Namespace"] for f in frames for e in f["Events"]} == {"prod"}


async def test_index_is_inclusive_and_too_old_starts_at_buffer_head(
    http: aiohttp.ClientSession,
) -> None:
    twin = await start_nomad_twin(heartbeat_interval=0.2, event_buffer_size=3, nodes=1)
    try:
        for jid in ("a", "b", "c", "d"):
            job_body = job(jid)
            job_body["Job"]["Type"] = "batch"
            job_body["Job"]["TaskGroups"][0]["Count"] = 0
            await http.post(f"{twin.url}/v1/jobs", json=job_body)
        await asyncio.sleep(0.2)
        buffered = list(twin.state.broker._buf)
        oldest, second = buffered[0].index, buffered[1].index
        async with http.get(f"{twin.url}/v1/event/stream?index=1&topic=*") as resp:
            frames = await data_frames(resp, 1)
        assert frames[0]["Index"] == oldest
        async with http.get(f"{twin.url}/v1/event/stream?index={second}&topic=*") as resp:
            frames = await data_frames(resp, 1)
        assert frames[0]["Index"] == second
    finally:
        await twin.stop()


async def test_errors_before_streaming(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    post = await http.post(f"{twin.url}/v1/event/stream")
    assert (post.status, await post.text()) == (405, "Invalid method")
    bad = await http.get(f"{twin.url}/v1/event/stream?topic=a:b:c")
    assert bad.status == 400
    assert await bad.text() == (
        "Invalid topic query: error parsing topics: Invalid key value pair for topic, topic: a:b:c"
    )
    bad_index = await http.get(f"{twin.url}/v1/event/stream?index=x")
    assert bad_index.status == 400 and (await bad_index.text()).startswith("Unable to parse index")


async def test_acl_denial_is_403_before_streaming(http: aiohttp.ClientSession) -> None:
    twin = await start_nomad_twin(acl=True, heartbeat_interval=0.2)
    try:
        anon = await http.get(f"{twin.url}/v1/event/stream?topic=Job")
        assert (anon.status, await anon.text()) == (403, "Permission denied")
        assert anon.headers["Content-Type"] == "text/plain; charset=utf-8"
        mgmt = {"X-Nomad-Token": twin.management_token or ""}
        await http.post(
            f"{twin.url}/v1/acl/policy/reader",
            headers=mgmt,
            json={"Rules": 'namespace "default" { policy = "read" }'},
        )
        tok = await (
            await http.post(
                f"{twin.url}/v1/acl/token",
                headers=mgmt,
                json={"Type": "client", "Policies": ["reader"]},
            )
        ).json()
        bearer = {"Authorization": f"Bearer {tok['SecretID']}"}
        async with http.get(f"{twin.url}/v1/event/stream?topic=Job", headers=bearer) as ok:
            assert ok.status == 200
            assert await read_frames(ok, 1) == [{}]
        everything = await http.get(f"{twin.url}/v1/event/stream", headers=bearer)
        assert everything.status == 403  # no topic = *:* needs management
    finally:
        await twin.stop()


async def test_drop_after_n_frames_fault(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    for jid in ("a", "b", "c"):
        await http.post(f"{twin.url}/v1/jobs", json=job(jid))
    resp = await http.post(f"{twin.url}/_twin/faults", json={"stream_drop_after": 2})
    assert (await resp.json())["stream_drop_after"] == 2
    async with http.get(f"{twin.url}/v1/event/stream?topic=Job") as stream:
        frames = await data_frames(stream, 2)
        assert len(frames) == 2
        error = await drain(stream)
    assert isinstance(error, aiohttp.ClientPayloadError)  # cut mid-stream, not a clean end


async def drain(stream: aiohttp.ClientResponse) -> BaseException | None:
    try:
        async with asyncio.timeout(5):
            while await stream.content.readline():
                pass
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        return exc
    return None


async def test_python_nomad_event_stream_with_topic_list(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    url = urlparse(twin.url)
    n = nomad.Nomad(host=url.hostname, port=url.port, timeout=5)
    thread, stop, events = n.event.stream.get_stream(index=0, topic=["Job:web"], timeout=5)
    thread.start()
    try:
        await http.post(f"{twin.url}/v1/jobs", json=job("other"))
        await http.post(f"{twin.url}/v1/jobs", json=job("web"))
        frame = await asyncio.to_thread(events.get, True, 5)
        assert {e["Key"] for e in frame["Events"]} == {"web"}
        assert frame["Events"][0]["Type"] == "JobRegistered"
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
    assert isinstance(events, queue.Queue)
