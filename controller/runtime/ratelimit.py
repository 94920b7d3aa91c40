"""Rate limiters that decide how long a failed key waits before its next reconcile.

Two concerns, combined with ``MaxOf`` as client-go's default controller limiter does:
- ``ItemExponential``: per-key exponential backoff, so one broken job backs off on its own
  (``base * 2**failures``, capped); ``forget`` resets it after a success.
- ``TokenBucket``: a global budget (qps, burst) over all retries, so a mass failure (Nomad down)
  does not turn into a retry storm when it recovers.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from controller.runtime.clock import Clock

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class RateLimiter(Protocol[K_contra]):
    def when(self, item: K_contra) -> float:
        """Delay in seconds before ``item`` may be retried; records one more failure."""
        ...

    def forget(self, item: K_contra) -> None:
        """Stop tracking ``item`` (after a success): its backoff starts again from the base."""
        ...

    def num_requeues(self, item: K_contra) -> int: ...


class ItemExponential(Generic[K]):
    """``base * 2**failures`` seconds per key, capped at ``cap``."""

    def __init__(self, *, base: float = 0.5, cap: float = 300.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, item: K) -> float:
        n = self._failures.get(item, 0)
        self._failures[item] = n + 1
        if n >= 64:  # 2**64 * base is past any cap; avoid float overflow
            return self.cap
        return float(min(self.base * (2**n), self.cap))

    def forget(self, item: K) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: K) -> int:
        return self._failures.get(item, 0)


class TokenBucket(Generic[K]):
    """A token bucket shared by all keys: ``qps`` tokens per second, at most ``burst`` saved.

    Like Go's ``rate.Limiter.Reserve()``: every call takes a token now, going into debt if
    needed, and the returned delay is how long until that debt is paid back.
    """

    def __init__(self, *, qps: float = 20.0, burst: int = 100, clock: Clock) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"need qps > 0 and burst >= 1, got qps={qps} burst={burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.monotonic()

    def when(self, item: K) -> float:
        now = self._clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, item: K) -> None:
        return None

    def num_requeues(self, item: K) -> int:
        return 0


class MaxOf(Generic[K]):
    """The longest delay of several limiters; all of them record the failure."""

    def __init__(self, *limiters: RateLimiter[K]) -> None:
        if not limiters:
            raise ValueError("MaxOf needs at least one limiter")
        self._limiters = limiters

    def when(self, item: K) -> float:
        return max(lim.when(item) for lim in self._limiters)

    def forget(self, item: K) -> None:
        for lim in self._limiters:
            lim.forget(item)

    def num_requeues(self, item: K) -> int:
        return max(lim.num_requeues(item) for lim in self._limiters)


def default_limiter(
    clock: Clock,
    *,
    base: float = 0.5,
    cap: float = 300.0,
    qps: float = 20.0,
    burst: int = 100,
) -> MaxOf[K]:
    """Per-key exponential backoff combined with the global bucket (defaults = MESH_* defaults)."""
    return MaxOf(
        ItemExponential(base=base, cap=cap), TokenBucket(qps=qps, burst=burst, clock=clock)
    )
