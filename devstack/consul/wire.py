"""HTTP conventions shared by every Consul twin endpoint.

Consul's HTTP layer is uniform: JSON bodies as Go marshals them, plain-text errors with the
status code in the status line only, 405 for a wrong verb, 200 with an empty body for writes,
and on catalog/health reads the `X-Consul-*` headers and blocking queries (`?index=&wait=`,
default wait 5m, max 10m, plus up to wait/16 of jitter).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devstack import godur
from devstack.consul.render import go_json
from devstack.consul.state import ConsulState
from devstack.consul.validate import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
STATE_KEY: web.AppKey[ConsulState] = web.AppKey("consul_state", ConsulState)


def state_of(request: web.Request) -> ConsulState:
    return request.app[STATE_KEY]


def text_error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """Consul's errors: the message as text/plain, nothing else."""
    return web.Response(
        status=status,
        body=text.encode(),
        headers={"Content-Type": "text/plain; charset=utf-8", **(headers or {})},
    )


def empty_ok() -> web.Response:
    """Writes answer 200 with an empty body (the handler returned nil)."""
    return web.Response(status=200, body=b"")


def json_ok(
    request: web.Request, obj: object, headers: dict[str, str] | None = None
) -> web.Response:
    body = go_json(obj, pretty="pretty" in request.query)
    return web.Response(
        status=200, body=body, headers={"Content-Type": "application/json", **(headers or {})}
    )


def methods(*allowed: str) -> Callable[[Handler], Handler]:
    """Restrict an endpoint to its verbs: others get 405 `method X not allowed`."""

    def wrap(handler: Handler) -> Handler:
        async def inner(request: web.Request) -> web.StreamResponse:
            allow = ",".join(["OPTIONS", *allowed])
            if request.method == "OPTIONS":
                return web.Response(status=200, headers={"Allow": allow})
            if request.method not in allowed:
                return text_error(405, f"method {request.method} not allowed", {"Allow": allow})
            return await handler(request)

        return inner

    return wrap


def query_meta(request: web.Request, index: int) -> dict[str, str]:
    """The X-Consul-* headers of a catalog/health read (Go's canonical header casing)."""
    q = request.query
    consistency = "stale" if "stale" in q else "consistent" if "consistent" in q else "leader"
    return {
        "X-Consul-Effective-Consistency": consistency,
        "X-Consul-Index": str(max(1, index)),
        "X-Consul-Knownleader": "true",
        "X-Consul-Lastcontact": "0",
        "X-Consul-Query-Backend": "blocking-query",
    }


def _blocking_params(request: web.Request) -> tuple[int, float]:
    q = request.query
    if "stale" in q and "consistent" in q:
        raise ApiError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
    wait = DEFAULT_WAIT
    if q.get("wait"):
        try:
            wait = godur.parse(q["wait"]) / godur.SECOND
        except godur.DurationError:
            raise ApiError(400, "Invalid wait time") from None
    index = 0
    if q.get("index"):
        try:
            index = int(q["index"])
            if index < 0:
                raise ValueError(index)
        except ValueError:
            raise ApiError(400, "Invalid index") from None
    wait = min(max(wait, 0.0), MAX_WAIT)
    return index, wait


async def blocking_read(
    request: web.Request, current: Callable[[], int], build: Callable[[], Any]
) -> web.Response:
    """Answer a read, first waiting (if asked) until the resource's index passes ?index."""
    min_index, wait = _blocking_params(request)
    if min_index > 0:
        wait += random.uniform(0, wait / 16)
        await state_of(request).wait_changed(current, min_index, wait)
    index = current()
    return json_ok(request, build(), query_meta(request, index))
