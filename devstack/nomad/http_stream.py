"""HTTP: GET /v1/event/stream — NDJSON over a chunked response (Nomad <= 1.11.1 mode).

The ACL check runs before the response starts, so a denial is a plain 403. The stream
opens with ``{}``, sends ``{}`` every heartbeat interval, and one line per raft index
whose events pass the topic and namespace filters. Errors after the start are written
as raw text without a newline, then the response ends (as Nomad does).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from devstack.nomad.ctx import ctx_of
from devstack.nomad.errors import ApiError
from devstack.nomad.events import Filter, SubscriptionClosed, parse_topics
from devstack.nomad.httpbase import text, token

READ_JOB_TOPICS = ("Job", "Allocation", "Deployment", "Evaluation", "Service", "CSIPlugin")


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
    authz = c.authz(request)
    for topic in topics:
        if topic in READ_JOB_TOPICS:
            ok = all(authz.allow_ns(n, "read-job") for n in namespaces)
        elif topic == "Node":
            ok = authz.allow_coarse("node", "read")
        else:
            ok = authz.management
        if not ok:
            raise ApiError(403, "Permission denied")
    secret = token(request) if c.acl else ""
    flt = Filter(topics, namespaces)
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = "application/json"
    resp.headers["Cache-Control"] = "no-cache"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    task = asyncio.current_task()
    c.streams.add(task)
    try:
        await _pump(request, resp, c, flt, index, secret)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        c.streams.discard(task)
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


async def _pump(
    request: web.Request, resp: web.StreamResponse, c: object, flt: Filter, index: int, secret: str
) -> None:
    from devstack.nomad.ctx import TwinCtx

    assert isinstance(c, TwinCtx)
    broker = c.state.broker
    loop = asyncio.get_running_loop()
    await resp.write(b"{}\n")
    seq = broker.start_seq(index)
    next_beat = loop.time() + c.heartbeat
    sent = 0
    while True:
        try:
            frame = await broker.next_frame(seq, max(0.0, next_beat - loop.time()))
        except SubscriptionClosed as exc:
            await resp.write(str(exc).encode())
            return
        if secret and secret not in c.state.acl_tokens:
            await resp.write(b"subscription closed by server, client should resubscribe")
            return
        if frame is None:
            await resp.write(b"{}\n")
            next_beat = loop.time() + c.heartbeat
            continue
        seq = frame.seq + 1
        selected = flt.select(frame)
        if not selected:
            continue
        line = b'{"Index":%d,"Events":[' % frame.index + b",".join(selected) + b"]}\n"
        await resp.write(line)
        sent += 1
        drop = c.faults.stream_drop_after
        if drop and sent >= drop:
            if request.transport is not None:
                request.transport.abort()
            return


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/event/stream", event_stream)
