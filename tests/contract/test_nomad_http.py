"""The Nomad client and stream reader against a scripted loopback server (wire edge cases the
twin does not produce on demand: 403 before streaming, parting text, silence, flaky 5xx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from controller.nomad.client import NomadClient
from controller.nomad.errors import BadRequest, Conflict, PermissionDenied, TransientError
from controller.nomad.jobs import NomadJobs
from controller.nomad.stream import EventStream
from controller.nomad.variables import NomadVariables
from controller.runtime.clock import FakeClock
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scripted:
    """A loopback server whose routes the test sets; records every request it saw."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.seen: list[web.Request] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.server = TestServer(app, host="127.0.0.1")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return web.Response(status=404, text="")
        return await handler(request)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[Scripted]:
    s = Scripted()
    await s.server.start_server()
    try:
        yield s
    finally:
        await s.server.close()


@pytest_asyncio.fixture
async def client(scripted: Scripted) -> AsyncIterator[NomadClient]:
    c = NomadClient(scripted.url, token="s3cret", region="eu", retry_budget=2.0)
    try:
        yield c
    finally:
        await c.close()


def text(status: int, body: str) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, text=body)

    return handler


async def test_headers_and_query_conventions(scripted: Scripted, client: NomadClient) -> None:
    async def jobs(_: web.Request) -> web.Response:
        return web.json_response([], headers={"X-Nomad-Index": "42"})

    scripted.routes["GET", "/v1/jobs"] = jobs
    listing = await NomadJobs(client).list_jobs("*")
    assert listing.index == 42
    req = scripted.seen[-1]
    assert req.headers["X-Nomad-Token"] == "s3cret"
    assert req.query["namespace"] == "*"
    assert req.query["region"] == "eu"
    assert req.query["meta"] == "true"
    assert "s3cret" not in repr(client)


async def test_pagination_follows_next_token(scripted: Scripted, client: NomadClient) -> None:
    async def jobs(request: web.Request) -> web.Response:
        if request.query.get("next_token") == "default.b":
            return web.json_response([{"ID": "b"}], headers={"X-Nomad-Index": "9"})
        headers = {"X-Nomad-Index": "8", "X-Nomad-NextToken": "default.b"}
        return web.json_response([{"ID": "a"}], headers=headers)

    scripted.routes["GET", "/v1/jobs"] = jobs
    listing = await NomadJobs(client).list_jobs("*")
    assert [s["ID"] for s in listing.stubs] == ["a", "b"]
    assert listing.index == 8


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, "Job ID hasn't been provided", BadRequest),
        (403, "Permission denied", PermissionDenied),
        (
            500,
            "Enforcing job modify index 17: job exists with conflicting job modify index: 19",
            Conflict,
        ),
        (500, "1 error occurred:\n\t* Task group cache validation failed", TransientError),
    ],
)
async def test_register_errors_map_and_are_never_retried(
    scripted: Scripted, client: NomadClient, status: int, body: str, error: type[Exception]
) -> None:
    scripted.routes["POST", "/v1/job/web"] = text(status, body)
    with pytest.raises(error):
        await NomadJobs(client).register_job({"ID": "web"}, enforce_index=17)
    posts = [r for r in scripted.seen if r.method == "POST"]
    assert len(posts) == 1


async def test_reads_retry_transient_errors(scripted: Scripted, client: NomadClient) -> None:
    answers = iter([503, 500, 200])

    async def job(_: web.Request) -> web.Response:
        status = next(answers)
        if status != 200:
            return web.Response(status=status, text="No cluster leader")
        return web.json_response({"ID": "web"}, headers={"X-Nomad-Index": "3"})

    scripted.routes["GET", "/v1/job/web"] = job
    assert await NomadJobs(client).get_job("web", "default") == {"ID": "web"}
    assert len(scripted.seen) == 3


async def test_missing_job_is_none(scripted: Scripted, client: NomadClient) -> None:
    scripted.routes["GET", "/v1/job/gone"] = text(404, "job not found")
    assert await NomadJobs(client).get_job("gone", "default") is None


async def test_variable_cas_conflict_carries_the_current_variable(
    scripted: Scripted, client: NomadClient
) -> None:
    current = {"Namespace": "default", "Path": "a/b", "ModifyIndex": 12, "Items": {"k": "v2"}}

    async def put(_: web.Request) -> web.Response:
        # Nomad sends the 409 body without an application/json content type.
        return web.Response(status=409, text=json.dumps(current))

    scripted.routes["PUT", "/v1/var/a/b"] = put
    with pytest.raises(Conflict) as info:
        await NomadVariables(client).put("a/b", {"k": "v"}, cas=11)
    assert info.value.current == current
    assert scripted.seen[-1].query["cas"] == "11"


async def test_unreachable_nomad_is_transient() -> None:
    async with NomadClient("http://127.0.0.1:9", retry_budget=0.2) as dead:
        with pytest.raises(TransientError):
            await NomadJobs(dead).get_job("web", "default")


# --- event stream -------------------------------------------------------------------------------


def frame(index: int, job_id: str) -> bytes:
    event = {
        "Topic": "Job",
        "Type": "JobRegistered",
        "Key": job_id,
        "Namespace": "default",
        "FilterKeys": None,
        "Index": index,
        "Payload": {"Job": {"ID": job_id}},
    }
    return json.dumps({"Index": index, "Events": [event]}).encode() + b"\n"


def streaming(*parts: bytes, stall: asyncio.Event | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for part in parts:
            await resp.write(part)
        if stall is not None:
            await stall.wait()
        return resp

    return handler


async def collect(stream: EventStream, after: int) -> list[int]:
    return [b.index async for b in stream.connect(after)]


async def test_stream_403_before_streaming_is_permission_denied(
    scripted: Scripted, client: NomadClient
) -> None:
    scripted.routes["GET", "/v1/event/stream"] = text(403, "Permission denied")
    with pytest.raises(PermissionDenied):
        await collect(EventStream(client), 0)


async def test_stream_parting_text_ends_the_connection_and_resume_drops_replays(
    scripted: Scripted, client: NomadClient
) -> None:
    parting = b"subscription closed by server, client should resubscribe"
    scripted.routes["GET", "/v1/event/stream"] = streaming(
        b"{}\n", frame(11, "a")[:20], frame(11, "a")[20:], frame(12, "b"), parting
    )
    stream = EventStream(client)
    assert await collect(stream, 10) == [11, 12]
    assert "subscription closed by server" in stream.end_reason
    first = scripted.seen[-1].query
    assert first["index"] == "11"
    assert first.getall("topic") == ["Job", "Allocation"]
    assert first["namespace"] == "*"
    # Nomad replays the frame at the requested index (and older buffered ones): dropped.
    scripted.routes["GET", "/v1/event/stream"] = streaming(b"{}\n", frame(12, "b"), frame(13, "c"))
    assert await collect(stream, 0) == [13]
    assert scripted.seen[-1].query["index"] == "13"
    assert stream.end_reason == "EOF"
    assert stream.last_index == 13


async def test_stream_watchdog_reconnects_a_silent_connection(
    scripted: Scripted, client: NomadClient
) -> None:
    stall = asyncio.Event()
    scripted.routes["GET", "/v1/event/stream"] = streaming(b"{}\n", frame(5, "a"), stall=stall)
    clock = FakeClock()
    stream = EventStream(client, heartbeat_timeout=45.0, clock=clock)
    task = asyncio.create_task(collect(stream, 0))
    await eventually(lambda: stream.last_index == 5, within=2.0, every=0.01, what="index 5 read")
    assert stream.last_line_time == clock.monotonic()
    assert stream.last_line_at == clock.now()  # the silence gauge's wall time
    await clock.advance(44)
    assert not task.done()
    await clock.advance(2)
    assert await asyncio.wait_for(task, 5) == [5]
    assert "watchdog" in stream.end_reason
    stall.set()
