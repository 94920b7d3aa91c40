"""Time for the template manager: wall-clock reads and sleeps, injectable for tests.

Certificates carry wall-clock dates, so re-render times are epoch seconds; a test clock can
move time forward and wake every sleeper whose moment has come, without real waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when told to (`advance`); sleepers wake when their time comes."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._changed = asyncio.Condition()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        until = self._now + max(0.0, seconds)
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= until)

    async def advance(self, seconds: float) -> None:
        async with self._changed:
            self._now += seconds
            self._changed.notify_all()
        for _ in range(5):  # let the woken sleepers run up to their next await
            await asyncio.sleep(0)
