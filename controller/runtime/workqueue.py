"""A deduplicating, delaying, rate-limited work queue of keys (client-go semantics, asyncio).

Why a queue of keys and not of events: reconciles are level-triggered, so ten events about one
job need one reconcile, and one job must never be reconciled by two workers at once.

- ``dirty``: keys that need a reconcile. Adding a dirty key is a no-op (bursts coalesce).
- ``processing``: keys a worker holds. A key added while processing stays dirty and is queued
  again by ``done()`` — exactly one more run, never a concurrent one.
- delayed adds wait in a heap; for one key the earliest ready time wins.
- ``add_rate_limited`` delays by the rate limiter (per-key backoff + global bucket).
- two lanes: a key added with ``low_priority`` (from a resync or a reconnect's LIST: a
  summary of the cluster, not news) is handed out only when no other key is ready, and a key
  waiting in the low lane moves to the front lane when it is added again without it. A resync
  enqueues every watched job at once; in one FIFO a user's change made during it waited
  behind all of them, so its latency grew with the size of the cluster.

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
        # Ready keys: each lane holds (ticket, key); a key is ready under the ticket in
        # ``_ready``, so the entry a promotion left behind in the low lane is skipped.
        self._queue: deque[tuple[int, K]] = deque()
        self._low: deque[tuple[int, K]] = deque()
        self._ready: dict[K, int] = {}
        self._tickets = itertools.count()
        # key -> True while every add since it became dirty was low priority
        self._dirty: dict[K, bool] = {}
        self._processing: set[K] = set()
        self._added_at: dict[K, float] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        # Delayed keys: each heap entry is (ready time, sequence, key, low priority), and
        # ``_waiting`` maps a key to its live entry, the same tuple: a second tuple per parked
        # key cost ~48 bytes in each queue (health and certs park every job for the interval).
        # An entry that is not its key's live one (an earlier time or a promotion replaced it)
        # is skipped when it comes up.
        self._waiting: dict[K, tuple[float, int, K, bool]] = {}
        self._heap: list[tuple[float, int, K, bool]] = []
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

    def add(self, item: K, *, low_priority: bool = False) -> None:
        """Mark ``item`` as needing a reconcile (no-op if it already does). ``low_priority``:
        hand it out after every key added without it (see the module docstring); adding a
        low-priority key again without it moves it to the front lane."""
        if self._shutting_down:
            return
        low = self._dirty.get(item)
        if low is not None:
            if low and not low_priority:
                self._dirty[item] = False
                if item in self._ready:
                    self._push(item)  # re-ticketed in the front lane; the low entry is dead
            return
        self._adds.inc()
        self._dirty[item] = low_priority
        if item in self._processing:
            return
        self._push(item)

    def add_after(self, item: K, delay: float, *, low_priority: bool = False) -> None:
        """Add ``item`` after ``delay`` seconds; an earlier pending time for it wins (and is
        handed out at the higher of the two priorities)."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item, low_priority=low_priority)
            return
        ready = self._clock.monotonic() + delay
        current = self._waiting.get(item)
        if current is not None and current[0] <= ready:
            if current[3] and not low_priority:  # same time and place, front lane
                self._park(current[0], current[1], item, low_priority=False)
            return
        self._park(ready, next(self._seq), item, low_priority=low_priority)
        self._arm_timer()

    def _park(self, ready: float, seq: int, item: K, *, low_priority: bool) -> None:
        """Make (``ready``, ``seq``, ``item``, ``low_priority``) the key's live heap entry."""
        entry = (ready, seq, item, low_priority)
        self._waiting[item] = entry
        heapq.heappush(self._heap, entry)

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
        while not self._ready:
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
        item = self._pop()
        del self._dirty[item]
        self._processing.add(item)
        self._idle.clear()
        added = self._added_at.pop(item, None)
        if added is not None:
            self._latency.observe(max(0.0, self._clock.monotonic() - added))
        self._depth.set(len(self._ready))
        self._drop_emptied()
        return item

    def _drop_emptied(self) -> None:
        """Replace each per-key table that just became empty with a new one. A dict keeps the
        capacity of its largest size: a cold start or a resync makes every job dirty and ready
        at once, and after it drains the empty tables still held ~110 bytes per job each
        (three per queue, three queues), for the life of the process."""
        if not self._ready:
            self._ready = {}
        if not self._dirty:
            self._dirty = {}
        if not self._added_at:
            self._added_at = {}

    def _pop(self) -> K:
        """The first live entry of the front lane, else of the low lane (``_ready`` is not
        empty, so one exists)."""
        for lane in (self._queue, self._low):
            while lane:
                ticket, item = lane.popleft()
                if self._ready.get(item) == ticket:
                    del self._ready[item]
                    return item
        raise RuntimeError("work queue: a ready key has no entry in either lane")

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
        return len(self._ready)

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
        """Make the dirty ``item`` ready, in the lane its priority says."""
        ticket = next(self._tickets)
        self._ready[item] = ticket
        (self._low if self._dirty[item] else self._queue).append((ticket, item))
        self._added_at.setdefault(item, self._clock.monotonic())
        self._depth.set(len(self._ready))
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
            entry = heapq.heappop(self._heap)
            item = entry[2]
            if self._waiting.get(item) is entry:
                del self._waiting[item]
                self.add(item, low_priority=entry[3])
        if not self._waiting:
            self._waiting = {}  # as ``_drop_emptied``: a burst of delays drained
        if self._heap:
            self._arm_timer()
