"""HTTP conventions shared by every twin endpoint.

Plain-text error bodies with Nomad's codes, the X-Nomad-* headers in Go's canonical
spelling, blocking queries (``index`` + ``wait``: default 5m, cap 10m, jitter up to
wait/16), namespace and token extraction, and JSON bodies in Go struct order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from devstack import godur
from devstack.nomad.codec import dumps, parse_bool
from devstack.nomad.errors import ApiError
from devstack.nomad.notify import Notifier

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0


def text(code: int, message: str, index: int | None = None) -> web.Response:
    resp = web.Response(status=code, body=message.encode())
    resp.headers["Content-Type"] = "text/plain; charset=utf-8"
    if index is not None:
        resp.headers["X-Nomad-Index"] = str(index)
    return resp


def reply(
    obj: Any,
    index: int | None = None,
    *,
    query: bool = True,
    status: int = 200,
    next_token: str = "",
) -> web.Response:
    resp = web.Response(status=status, body=dumps(obj))
    resp.headers["Content-Type"] = "application/json"
    if index is not None:
        resp.headers["X-Nomad-Index"] = str(index)
    if query:
        resp.headers["X-Nomad-Knownleader"] = "true"
        resp.headers["X-Nomad-Lastcontact"] = "0"
    if next_token:
        resp.headers["X-Nomad-Nexttoken"] = next_token
    return resp


def namespace(request: web.Request, body_ns: str = "") -> str:
    return request.query.get("namespace") or body_ns or "default"


def token(request: web.Request) -> str:
    tok = request.headers.get("X-Nomad-Token", "").strip()
    if tok:
        return tok
    auth = request.headers.get("Authorization", "").strip()
    if auth.lower().startswith("bearer "):
        parts = auth[7:].split()
        return parts[0] if parts else ""
    return ""


def query_bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw == "":
        return True
    try:
        return parse_bool(raw)
    except ValueError as exc:
        raise ApiError(500, f'Failed to parse value of "{name}" ({raw}): {exc}') from exc


def check_stale(request: web.Request) -> None:
    raw = request.query.get("stale")
    if raw not in (None, "", "true", "false"):
        raise ApiError(400, "Expect `true` or `false` for `stale` query string parameter")


async def block(request: web.Request, notifier: Notifier, index_of: Callable[[], int]) -> int:
    """Wait while the watched index is <= ?index=; returns the index to report."""
    check_stale(request)
    raw_index = request.query.get("index")
    raw_wait = request.query.get("wait")
    min_index = 0
    if raw_index is not None:
        try:
            min_index = int(raw_index)
        except ValueError as exc:
            raise ApiError(400, "Invalid index") from exc
    wait = DEFAULT_WAIT
    if raw_wait is not None:
        try:
            wait = godur.parse(raw_wait) / 1e9
        except ValueError as exc:
            raise ApiError(400, "Invalid wait time") from exc
    # Nomad never reports index 0, or a blocking query could not be built from it.
    current = max(1, index_of())
    if min_index <= 0 or current > min_index:
        return current
    wait = min(wait if wait > 0 else DEFAULT_WAIT, MAX_WAIT)
    wait += random.uniform(0, wait / 16)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        current = max(1, index_of())
        if current > min_index:
            return current
        remaining = deadline - loop.time()
        if remaining <= 0:
            return current
        await notifier.wait(remaining)


def per_page(request: web.Request) -> int:
    raw = request.query.get("per_page")
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(400, "Expect a number for `per_page` query string parameter") from exc


def paginate(
    items: list[Any], request: web.Request, token_of: Callable[[Any], str]
) -> tuple[list[Any], str]:
    """Nomad's paginator: start at the first item whose token >= next_token."""
    start = request.query.get("next_token", "")
    if start:
        items = [i for i in items if token_of(i) >= start]
    size = per_page(request)
    if size > 0 and len(items) > size:
        return items[:size], token_of(items[size])
    return items, ""
