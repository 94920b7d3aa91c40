"""Leader election over a TTL lease lock, so only one controller replica writes at a time.

The loop: try to acquire every ``retry_period``; once held, renew every ``renew_interval``.
A renew that fails for a transient reason (timeout, connection error) is retried every
``retry_period`` until the ``renew_deadline``; a renew the lock *refuses* (someone else holds it)
is lost at once. The deadline is shorter than the TTL, so we give up before the lock can expire
under us and another replica can take it: ``lost`` is set and the manager exits non-zero
(controller-runtime's "for safety, exit when leadership is lost"). Deadlines are measured from
the *start* of the last successful request, the conservative end.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry

from controller.runtime.clock import Clock, wait_for
from controller.runtime.metrics import runtime_metrics


class LeaseLock(Protocol):
    """A TTL lock (e.g. a Nomad Variable lock). Implementations must be safe to call again."""

    @property
    def identity(self) -> str: ...

    async def acquire(self) -> bool:
        """True if we now hold the lock; False if someone else does. Raises on I/O errors."""
        ...

    async def renew(self) -> bool:
        """True if the lease was extended; False if the lock is no longer ours."""
        ...

    async def release(self) -> None: ...


class LeaderElector:
    def __init__(
        self,
        lock: LeaseLock,
        *,
        clock: Clock,
        ttl: float = 15.0,
        renew_interval: float = 5.0,
        renew_deadline: float | None = None,
        retry_period: float = 2.0,
        registry: CollectorRegistry | None = None,
        logger: Any = None,
    ) -> None:
        deadline = renew_deadline if renew_deadline is not None else ttl * 2 / 3
        if not 0 < renew_interval < deadline < ttl:
            raise ValueError(
                "need 0 < renew_interval < renew_deadline < ttl, got "
                f"{renew_interval} / {deadline} / {ttl}"
            )
        if retry_period <= 0:
            raise ValueError(f"retry_period must be > 0, got {retry_period}")
        self._lock = lock
        self._clock = clock
        self.ttl = ttl
        self.renew_interval = renew_interval
        self.renew_deadline = deadline
        self.retry_period = retry_period
        self.request_timeout = max(deadline / 2, 1.0)
        self._log = logger if logger is not None else structlog.get_logger("controller.leader")
        metrics = runtime_metrics(registry if registry is not None else CollectorRegistry())
        self._gauge = metrics.leader_is_leader
        self._lost_total = metrics.leader_lost
        self._renew_time = metrics.leader_renew_time
        self._gauge.set(0)
        self.elected = asyncio.Event()
        self.lost = asyncio.Event()
        self._is_leader = False
        self._leader_since: datetime | None = None

    @property
    def identity(self) -> str:
        return self._lock.identity

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    @property
    def leader_since(self) -> datetime | None:
        """Wall time at which we became leader (None while not leading)."""
        return self._leader_since

    async def run(self) -> None:
        """Campaign until elected, then renew; returns only when leadership is lost."""
        acquired_at = await self._campaign()
        await self._hold(acquired_at)

    async def release(self) -> None:
        """Give the lock up (graceful shutdown only: the process must exit right after)."""
        if not self._is_leader:
            return
        self._set_leader(False)
        try:
            await wait_for(self._clock, self._lock.release(), self.request_timeout)
            self._log.info("leader lock released", identity=self.identity)
        except Exception as exc:
            self._log.warning("leader lock release failed; it expires by TTL", error=repr(exc))

    async def _campaign(self) -> float:
        while True:
            started = self._clock.monotonic()
            try:
                got = await wait_for(self._clock, self._lock.acquire(), self.request_timeout)
            except Exception as exc:
                got = False
                self._log.warning("leader lock acquire failed", error=repr(exc))
            if got:
                self._set_leader(True)
                self._log.info("became leader", identity=self.identity)
                return started
            await self._clock.sleep(self.retry_period)

    async def _hold(self, last_ok: float) -> None:
        wait = self.renew_interval
        while True:
            await self._clock.sleep(wait)
            now = self._clock.monotonic()
            remaining = last_ok + self.renew_deadline - now
            if remaining <= 0:
                return self._lose("renew deadline passed")
            try:
                ok = await wait_for(
                    self._clock, self._lock.renew(), min(self.request_timeout, remaining)
                )
            except Exception as exc:
                self._log.warning("leader lock renew failed", error=repr(exc))
            else:
                self._renew_time.observe(self._clock.monotonic() - now)
                if not ok:
                    return self._lose("lock refused the renew (held by someone else)")
                last_ok = now
                wait = self.renew_interval
                continue
            remaining = last_ok + self.renew_deadline - self._clock.monotonic()
            if remaining <= 0:
                return self._lose("no successful renew within the renew deadline")
            wait = min(self.retry_period, remaining)

    def _lose(self, why: str) -> None:
        self._set_leader(False)
        self._lost_total.inc()
        self._log.error("leadership lost", identity=self.identity, reason=why)
        self.lost.set()

    def _set_leader(self, value: bool) -> None:
        self._is_leader = value
        self._leader_since = self._clock.now() if value else None
        self._gauge.set(1 if value else 0)
        if value:
            self.elected.set()
