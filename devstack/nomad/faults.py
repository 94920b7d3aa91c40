"""Fault knobs for tests: stream drops, injected 5xx, latency, event buffer size,
answering as an agent that forwards RPCs (``forwarded_rpc``), and the Nomad >= 1.11.2
event stream (``event_stream_hijacked``).

Set them in-process (``twin.faults.error_ratio = 0.5``) or over HTTP with
``POST /_twin/faults`` and a JSON object of the same names; ``GET /_twin/faults`` shows
them and ``DELETE /_twin/faults`` resets them. The middleware applies them to every
``/v1/`` request; ``/_twin/`` itself is never faulted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web

from devstack.nomad.errors import ApiError
from devstack.nomad.httpbase import text


@dataclass
class NomadFaults:
    stream_drop_after: int = 0  # abort event-stream connections after N data frames (0: off)
    error_ratio: float = 0.0  # share of requests answered with error_status
    error_status: int = 500
    error_path_prefix: str = ""  # only paths starting with this ("" = every /v1/ path)
    latency: float = 0.0  # seconds added before every /v1/ request is handled
    event_buffer_size: int | None = None  # resize the event buffer (None: leave)
    seed: int | None = None
    # Answer as a follower server or a client agent: the RPC goes to the leader through
    # helper/pool ConnPool.RPC, which wraps every error that is not RPC-coded as
    # fmt.Errorf("rpc error: %w", err); command/agent/http.go wrap() only unwraps
    # permission/token/registration/filter errors by suffix, so every other 500 body
    # (the EnforceIndex conflict included) starts with "rpc error: ".
    forwarded_rpc: bool = False
    # Serve /v1/event/stream as Nomad >= 1.11.2 does (command/agent/event_endpoint.go
    # EventStream after the hijack change, as fixed in 1.11.3): the connection is hijacked,
    # "200 OK" with Connection: close is written before the RPC authenticates, the body is
    # neither chunked nor length-delimited, and any error (ACL included) is an EOF.
    event_stream_hijacked: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown fault knobs: {sorted(unknown)}")
        for key, value in values.items():
            setattr(self, key, value)
        if "seed" in values:
            self._rng = random.Random(self.seed)

    def reset(self) -> None:
        self.update({f.name: f.default for f in fields(self)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def should_fail(self, path: str) -> bool:
        if self.error_ratio <= 0 or not path.startswith(self.error_path_prefix or "/v1/"):
            return False
        return self._rng.random() < self.error_ratio


RPC_ERROR_PREFIX = "rpc error: "  # helper/pool/pool.go ConnPool.RPC


async def _forwarded(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Prefix RPC error texts as a forwarding agent's HTTP API shows them."""
    try:
        resp = await handler(request)
    except ApiError as exc:
        if exc.code != 500 or exc.message.startswith(RPC_ERROR_PREFIX):
            raise
        raise ApiError(500, RPC_ERROR_PREFIX + exc.message) from exc
    if (
        resp.status == 500
        and isinstance(resp, web.Response)
        and resp.content_type == "text/plain"
        and isinstance(resp.body, bytes)
        and not resp.body.startswith(RPC_ERROR_PREFIX.encode())
    ):
        return text(500, RPC_ERROR_PREFIX + resp.body.decode(errors="replace"))
    return resp


def fault_middleware(faults: NomadFaults) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            if faults.latency > 0:
                await asyncio.sleep(faults.latency)
            if faults.should_fail(request.path):
                return text(faults.error_status, "injected fault (nomad twin)")
            if faults.forwarded_rpc:
                return await _forwarded(request, handler)
        return await handler(request)

    return middleware
