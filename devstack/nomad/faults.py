"""Fault knobs for tests: stream drops, injected 5xx, latency, event buffer size.

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
        return await handler(request)

    return middleware
