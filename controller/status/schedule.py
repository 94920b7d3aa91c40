"""When each coalesced status write is due: a heap of (time, path) and the loop that waits on it.

Status writes are coalesced per record: the first change after a quiet window is written at
once, later ones wait for the window to pass since our last write and go out together (the
trailing write of the latest content). This module only keeps the times; the store decides
what a flush writes. It runs on the injectable clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Awaitable, Callable

from controller.runtime.clock import Clock, WaitTimeout, wait_for


class FlushSchedule:
    """A min-heap of due times per path; a path may be in it more than once (the flush of a
    path with nothing pending is a no-op, so duplicates cost nothing but a look)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, str]] = []
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, due: float, path: str) -> None:
        """Flush ``path`` at monotonic time ``due``."""
        heapq.heappush(self._heap, (due, path))
        self._wake.set()

    def due(self) -> list[str]:
        """Pop every path whose time has come (each once)."""
        now = self.clock.monotonic()
        out: dict[str, None] = {}
        while self._heap and self._heap[0][0] <= now:
            out[heapq.heappop(self._heap)[1]] = None
        return list(out)

    def clear(self) -> None:
        self._heap.clear()

    async def run(self, flush: Callable[[list[str]], Awaitable[None]]) -> None:
        """Hand due paths to ``flush`` as their times come, until cancelled."""
        while True:
            self._wake.clear()
            paths = self.due()
            if paths:
                await flush(paths)
                continue
            delay = self._heap[0][0] - self.clock.monotonic() if self._heap else None
            with contextlib.suppress(WaitTimeout):
                await wait_for(self.clock, self._wake.wait(), delay)
