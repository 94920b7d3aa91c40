"""A bound on the requests one Nomad client has open at once, and the figures that show it.

Without a bound, every worker, the LIST pager and the health checks open as many requests as
they like, the connector queues the rest invisibly, and anything else sharing the client (the
leader lock once did) waits behind the pile. With one, bulk work queues here, where it can be
counted, and Nomad sees at most ``limit`` requests from us at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class InFlight:
    """An asyncio semaphore that counts its holders and waiters (``limit=None``: no bound)."""

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"the in-flight limit must be >= 1, got {limit}")
        self.limit = limit
        self._sem = asyncio.Semaphore(limit) if limit else None
        self.in_flight = 0
        self.waiting = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body (one request attempt)."""
        if self._sem is not None:
            self.waiting += 1
            try:
                await self._sem.acquire()
            finally:
                self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self._sem is not None:
                self._sem.release()
