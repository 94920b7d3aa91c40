"""Test doubles for the runtime: a TTL lock server on a fake clock, and simple runnables.

``LockServer`` behaves like a lease store (a Nomad Variable lock, say): one holder at a time,
a lease that expires ``ttl`` seconds after the last acquire/renew. Clients can be told to fail
(raise) or hang, which is how a partitioned leader looks from inside.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from controller.runtime.clock import FakeClock


@dataclass
class LockServer:
    clock: FakeClock
    ttl: float = 15.0
    holder: str | None = None
    expires: float = 0.0
    history: list[tuple[float, str]] = field(default_factory=list)

    def current(self) -> str | None:
        if self.holder is not None and self.clock.monotonic() >= self.expires:
            self.holder = None
        return self.holder

    def client(self, identity: str) -> FakeLock:
        return FakeLock(self, identity)


@dataclass
class FakeLock:
    server: LockServer
    _identity: str
    mode: str = "ok"  # ok | fail | hang
    acquires: int = 0
    renews: int = 0
    releases: int = 0

    @property
    def identity(self) -> str:
        return self._identity

    async def _io(self) -> None:
        if self.mode == "fail":
            raise ConnectionError("connection refused")
        if self.mode == "hang":
            await asyncio.Event().wait()

    async def acquire(self) -> bool:
        self.acquires += 1
        await self._io()
        if self.server.current() not in (None, self.identity):
            return False
        s = self.server
        s.holder, s.expires = self.identity, s.clock.monotonic() + s.ttl
        s.history.append((s.clock.monotonic(), self.identity))
        return True

    async def renew(self) -> bool:
        self.renews += 1
        await self._io()
        if self.server.current() != self.identity:
            return False
        self.server.expires = self.server.clock.monotonic() + self.server.ttl
        return True

    async def release(self) -> None:
        self.releases += 1
        await self._io()
        if self.server.current() == self.identity:
            self.server.holder = None


@dataclass
class RecordingRunnable:
    """Runs until cancelled, recording when it started and stopped."""

    name: str
    needs_leader: bool
    clock: FakeClock
    started: list[float] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)
    crash_after: float | None = None

    async def run(self) -> None:
        self.started.append(self.clock.monotonic())
        try:
            if self.crash_after is not None:
                await self.clock.sleep(self.crash_after)
                raise RuntimeError(f"{self.name} crashed")
            await asyncio.Event().wait()
        finally:
            self.stopped.append(self.clock.monotonic())

    @property
    def running(self) -> bool:
        return len(self.started) > len(self.stopped)
