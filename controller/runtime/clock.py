"""An injectable clock, so that backoff, leases, resync and timeouts are testable without sleeping.

Everything in the runtime that waits or measures time goes through a ``Clock``. Production uses
``SystemClock``; tests use ``FakeClock``, whose time only moves when the test calls
``advance()``. ``wait_for`` is the clock-aware replacement for ``asyncio.wait_for`` (which always
uses the event loop's real time).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T")


class Clock(Protocol):
    """Monotonic time for intervals, wall time for records, and a sleep that honours both."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to.

    ``sleep(d)`` parks the caller until ``advance()`` moves time to (or past) its deadline.
    ``advance`` wakes sleepers one deadline at a time, in deadline order (ties in the order they
    went to sleep), and lets the event loop run the woken tasks before moving on, so a task
    that sleeps again inside the advanced window is woken too. Nothing sleeps for real.
    """

    def __init__(self, start: float = 1000.0, wall: datetime | None = None) -> None:
        self._now = start
        self._wall0 = wall or datetime(2025, 1, 1, tzinfo=UTC)
        self._start = start
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many tasks are parked in ``sleep`` right now."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    async def settle(self, rounds: int = 20) -> None:
        """Give ready tasks a few turns of the event loop (no time passes)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline is reached."""
        target = self._now + max(0.0, seconds)
        await self.settle()
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            fut.set_result(None)
            await self.settle()
        self._now = target
        await self.settle()

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


class WaitTimeout(TimeoutError):
    """Raised by ``wait_for`` (distinct from a TimeoutError raised by the awaited code)."""


async def wait_for(clock: Clock, aw: Awaitable[T], limit: float | None) -> T:
    """``asyncio.wait_for`` on an injectable clock: cancel ``aw`` and raise ``WaitTimeout``.

    The awaitable runs in its own task (so it inherits the caller's contextvars); on timeout the
    task is cancelled and awaited, so nothing keeps running behind the caller's back.
    """
    task: asyncio.Future[Any] = asyncio.ensure_future(aw)
    if limit is None:
        return cast(T, await task)
    if type(clock) is SystemClock:
        return cast(T, await _wait_real(task, limit))
    timer: asyncio.Future[Any] = asyncio.ensure_future(clock.sleep(limit))
    try:
        await asyncio.wait([task, timer], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        await asyncio.gather(task, timer, return_exceptions=True)
        raise
    if task.done():
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
        return cast(T, task.result())
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise WaitTimeout(f"timed out after {limit}s")


async def _wait_real(task: asyncio.Future[Any], limit: float) -> Any:
    """``wait_for`` on the real clock: the event loop's own timer (``asyncio.timeout``) instead
    of a sleeping task and ``asyncio.wait``. Every reconcile runs under a timeout, and those
    two extra tasks per reconcile were a visible part of the controller's CPU in a profile.

    On expiry the caller is cancelled, which cancels ``task`` and waits for it to finish (a
    task awaiting another passes its cancellation on and wakes when that one is done); a
    cancellation of the caller from outside reaches ``task`` the same way and propagates."""
    try:
        async with asyncio.timeout(limit) as deadline:
            return await task
    except TimeoutError:
        if deadline.expired():
            raise WaitTimeout(f"timed out after {limit}s") from None
        raise
