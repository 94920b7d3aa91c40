"""Fault knobs of the Consul twin: take Consul away for real, make it slow, make it fail.

`pause()` closes the listening socket and drops open connections, so clients see
`connection refused` exactly as when an agent is stopped; `resume()` listens again on the
same port. `error_ratio` answers that share of `/v1/` requests with a 500 (`No cluster
leader`, the error a real cluster gives while it elects), `latency` delays every `/v1/` answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from aiohttp import web

from devstack.consul.wire import Handler, text_error


class Faults:
    """Knobs; also reachable over HTTP under /_twin/ (see server.py)."""

    def __init__(
        self, pause: Callable[[], Awaitable[None]], resume: Callable[[], Awaitable[None]]
    ) -> None:
        self.error_ratio = 0.0
        self.latency = 0.0
        self.paused = False
        self._pause = pause
        self._resume = resume
        self._resume_task: asyncio.Task[None] | None = None
        self._pause_task: asyncio.Task[None] | None = None

    async def pause(self, duration: float | None = None) -> None:
        """Refuse connections until resume() (or for `duration` seconds)."""
        if not self.paused:
            self.paused = True
            await self._pause()
        if duration is not None:
            self._resume_task = asyncio.get_running_loop().create_task(self._resume_after(duration))

    def pause_soon(self, duration: float) -> None:
        """Pause from inside a request handler: the pause must outlive that request."""

        async def later() -> None:
            await asyncio.sleep(0.05)  # let the answer reach the client first
            await self.pause(duration)

        self._pause_task = asyncio.get_running_loop().create_task(later())

    async def _resume_after(self, duration: float) -> None:
        await asyncio.sleep(duration)
        await self.resume()

    async def resume(self) -> None:
        if self.paused:
            await self._resume()
            self.paused = False

    def reset(self) -> None:
        self.error_ratio = 0.0
        self.latency = 0.0

    def cancel(self) -> None:
        for task in (self._pause_task, self._resume_task):
            if task is not None:
                task.cancel()

    def snapshot(self) -> dict[str, object]:
        return {"error_ratio": self.error_ratio, "latency": self.latency, "paused": self.paused}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if self.error_ratio > 0 and random.random() < self.error_ratio:
                return text_error(500, "rpc error making call: No cluster leader")
        return await handler(request)
