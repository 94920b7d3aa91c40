"""HTTP: GET /v1/event/stream — NDJSON, as Nomad <= 1.11.1 or (knob) >= 1.11.2 serves it.

Default (1.10 / <= 1.11.1): the ACL check runs before the response starts, so a denial is
a plain 403; the body is chunked; errors after the start are written as raw text without
a newline, then the response ends.

``faults.event_stream_hijacked`` (>= 1.11.2, command/agent/event_endpoint.go
``EventStream``): index and topic errors are still coded 400s, but then the handler
hijacks the connection and writes ``HTTP/1.1 200 OK`` by hand (``ContentLength: -1``, so
Go's ``Response.Write`` adds ``Connection: close``; no chunking, no Content-Length), and
only then does the ``Event.Stream`` RPC authenticate. A denial, a closed subscription or
any later error can no longer be written: the client sees 200 and then EOF.

Either way the stream opens with ``{}``, sends ``{}`` every heartbeat interval, and one
line per raft index whose events pass the topic and namespace filters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from devstack.nomad.ctx import TwinCtx, ctx_of
from devstack.nomad.errors import ApiError
from devstack.nomad.events import Filter, SubscriptionClosed, parse_topics
from devstack.nomad.httpbase import text, token

READ_JOB_TOPICS = ("Job", "Allocation", "Deployment", "Evaluation", "Service", "CSIPlugin")

Write = Callable[[bytes], Awaitable[None]]


def _allowed(
    c: TwinCtx, request: web.Request, topics: dict[str, set[str]], namespaces: set[str]
) -> bool:
    authz = c.authz(request)
    for topic in topics:
        if topic in READ_JOB_TOPICS:
            ok = all(authz.allow_ns(n, "read-job") for n in namespaces)
        elif topic == "Node":
            ok = authz.allow_coarse("node", "read")
        else:
            ok = authz.management
        if not ok:
            return False
    return True


async def event_stream(request: web.Request) -> web.StreamResponse:
    if request.method != "GET":
        return text(405, "Invalid method")
    c = ctx_of(request)
    st = c.state
    raw_index = request.query.get("index", "0") or "0"
    try:
        index = int(raw_index)
    except ValueError:
        return text(
            400, f'Unable to parse index: strconv.Atoi: parsing "{raw_index}": invalid syntax'
        )
    try:
        topics = parse_topics(request.query.getall("topic", []))
    except ValueError as exc:
        return text(400, str(exc))
    ns = request.query.get("namespace") or "default"
    namespaces = set(st.namespaces) if ns == "*" else {ns}
    secret = token(request) if c.acl else ""
    flt = Filter(topics, namespaces)
    if c.faults.event_stream_hijacked:
        return await _hijacked(request, c, flt, index, secret, topics, namespaces)
    if not _allowed(c, request, topics, namespaces):
        raise ApiError(403, "Permission denied")
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = "application/json"
    resp.headers["Cache-Control"] = "no-cache"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    task = asyncio.current_task()
    c.streams.add(task)
    try:
        await _pump(request, resp.write, c, flt, index, secret, errors_visible=True)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        c.streams.discard(task)
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


async def _hijacked(
    request: web.Request,
    c: TwinCtx,
    flt: Filter,
    index: int,
    secret: str,
    topics: dict[str, set[str]],
    namespaces: set[str],
) -> web.StreamResponse:
    """The >= 1.11.2 path: raw bytes on the transport, aiohttp's response never sent."""
    transport = request.transport
    if transport is None:
        return web.StreamResponse()
    major, minor = request.version
    # http.Response{ContentLength: -1}.Write: status line, "Connection: close" from the
    # transfer writer, then the handler's headers in sorted order, then the blank line.
    head = (
        f"HTTP/{major}.{minor} 200 OK\r\n"
        "Connection: close\r\n"
        "Cache-Control: no-cache\r\n"
        "Content-Type: application/json\r\n\r\n"
    )
    transport.write(head.encode())

    async def write(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("connection closed")
        transport.write(data)
        await asyncio.sleep(0)

    task = asyncio.current_task()
    c.streams.add(task)
    try:
        # Event.Stream authenticates inside the RPC, after the 200 went out.
        if _allowed(c, request, topics, namespaces):
            await _pump(request, write, c, flt, index, secret, errors_visible=False)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        c.streams.discard(task)
        transport.close()  # the body ends when the connection closes
    # aiohttp's own response meets a closed transport and is dropped (ConnectionError).
    return web.StreamResponse()


async def _pump(
    request: web.Request,
    write: Write,
    c: TwinCtx,
    flt: Filter,
    index: int,
    secret: str,
    *,
    errors_visible: bool,
) -> None:
    broker = c.state.broker
    loop = asyncio.get_running_loop()
    await write(b"{}\n")
    seq = broker.start_seq(index)
    next_beat = loop.time() + c.heartbeat
    sent = 0
    while True:
        try:
            frame = await broker.next_frame(seq, max(0.0, next_beat - loop.time()))
        except SubscriptionClosed as exc:
            if errors_visible:
                await write(str(exc).encode())
            return
        if secret and secret not in c.state.acl_tokens:
            if errors_visible:
                await write(b"subscription closed by server, client should resubscribe")
            return
        if frame is None:
            await write(b"{}\n")
            next_beat = loop.time() + c.heartbeat
            continue
        seq = frame.seq + 1
        selected = flt.select(frame)
        if not selected:
            continue
        line = b'{"Index":%d,"Events":[' % frame.index + b",".join(selected) + b"]}\n"
        await write(line)
        sent += 1
        drop = c.faults.stream_drop_after
        if drop and sent >= drop:
            if request.transport is not None:
                request.transport.abort()
            return


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/event/stream", event_stream)
