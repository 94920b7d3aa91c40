"""A deduplicating, delaying, rate-limited work queue of keys (client-go semantics, asyncio).

Why a queue of keys and not of events: reconciles are level-triggered, so ten events about one
job need one reconcile, and one job must never be reconciled by two workers at once.

- ``dirty``: keys that need a reconcile. Adding a dirty key is a no-op (bursts coalesce).
- ``processing``: keys a worker holds. A key added while processing stays dirty and is queued
  again by ``done()`` — exactly one more run, never a concurrent one.
- delayed adds wait in a heap; for one key the earliest ready time wins.
- ``add_rate_limited`` delays by the rate limiter (per-key backoff + global bucket).

Shutdown: ``get()`` raises ``QueueShutDown`` at once (no new work starts; pending keys are the
next leader's LIST's business); with ``drain=True`` ``shutdown`` also waits, up to a timeout,
for in-flight keys to be ``done()``. Single event loop, so no locks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry

from controller.runtime.clock import Clock, wait_for
from controller.runtime.metrics import runtime_metrics
from controller.runtime.ratelimit import RateLimiter

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    """Raised by ``get()`` once the queue is shutting down."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        name: str,
        clock: Clock,
        limiter: RateLimiter[K],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._limiter = limiter
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._added_at: dict[K, float] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._waiting: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: float | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._shutting_down = False
        m = runtime_metrics(registry if registry is not None else CollectorRegistry())
        self._depth = m.queue_depth.labels(name=name)
        self._adds = m.queue_adds.labels(name=name)
        self._retries = m.queue_retries.labels(name=name)
        self._latency = m.queue_latency.labels(name=name)
        self._depth.set(0)

    # -- adding -------------------------------------------------------------------------------

    def add(self, item: K) -> None:
        """Mark ``item`` as needing a reconcile (no-op if it already does)."""
        if self._shutting_down or item in self._dirty:
            return
        self._adds.inc()
        self._dirty.add(item)
        if item in self._processing:
            return
        self._push(item)

    def add_after(self, item: K, delay: float) -> None:
        """Add ``item`` after ``delay`` seconds; an earlier pending time for it wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        ready = self._clock.monotonic() + delay
        current = self._waiting.get(item)
        if current is not None and current <= ready:
            return
        self._waiting[item] = ready
        heapq.heappush(self._heap, (ready, next(self._seq), item))
        self._arm_timer()

    def add_rate_limited(self, item: K) -> None:
        """Re-add ``item`` after the rate limiter's delay (a retry after a failure)."""
        if self._shutting_down:
            return
        self._retries.inc()
        self.add_after(item, self._limiter.when(item))

    def forget(self, item: K) -> None:
        """Reset ``item``'s backoff (after a success). It must still be ``done()``."""
        self._limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        return self._limiter.num_requeues(item)

    # -- taking -------------------------------------------------------------------------------

    async def get(self) -> K:
        """Wait for a key and hold it (in ``processing``) until ``done(key)``."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_one()  # we were woken but will not take the key: pass it on
                raise
        if self._shutting_down:
            raise QueueShutDown(self.name)
        item = self._queue.popleft()
        self._dirty.discard(item)
        self._processing.add(item)
        self._idle.clear()
        added = self._added_at.pop(item, None)
        if added is not None:
            self._latency.observe(max(0.0, self._clock.monotonic() - added))
        self._depth.set(len(self._queue))
        return item

    def done(self, item: K) -> None:
        """Release ``item``; if it was re-added meanwhile, queue it for exactly one more run."""
        self._processing.discard(item)
        if item in self._dirty and not self._shutting_down:
            self._push(item)
        if not self._processing:
            self._idle.set()

    # -- state --------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys ready for a worker (informational: do not gate logic on it)."""
        return len(self._queue)

    @property
    def in_flight(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def waiting(self) -> int:
        """Keys parked in the delay heap."""
        return len(self._waiting)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    async def shutdown(self, *, drain: bool = False, grace: float = 30.0) -> bool:
        """Stop handing out keys; with ``drain`` wait up to ``grace`` seconds for in-flight keys.

        Returns True when nothing is in flight any more.
        """
        self._shutting_down = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._waiting.clear()
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
        if drain and self._processing:
            try:
                await wait_for(self._clock, self._idle.wait(), grace)
            except TimeoutError:
                return False
        return not self._processing

    # -- internals ----------------------------------------------------------------------------

    def _push(self, item: K) -> None:
        self._queue.append(item)
        self._added_at[item] = self._clock.monotonic()
        self._depth.set(len(self._queue))
        self._wake_one()

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _arm_timer(self) -> None:
        head = self._heap[0][0]
        if self._timer is not None and not self._timer.done():
            if self._timer_at is not None and self._timer_at <= head:
                return
            self._timer.cancel()
        self._timer_at = head
        self._timer = asyncio.get_running_loop().create_task(self._fire_at(head))

    async def _fire_at(self, at: float) -> None:
        await self._clock.sleep(at - self._clock.monotonic())
        self._timer = None
        self._timer_at = None
        now = self._clock.monotonic()
        while self._heap and self._heap[0][0] <= now:
            ready, _, item = heapq.heappop(self._heap)
            if self._waiting.get(item) == ready:
                del self._waiting[item]
                self.add(item)
        if self._heap:
            self._arm_timer()
