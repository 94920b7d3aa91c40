"""LeaderElector against a TTL lock server on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.runtime.clock import FakeClock
from controller.runtime.leader import LeaderElector
from tests.support.runtime_fakes import FakeLock, LockServer

pytestmark = pytest.mark.timeout(30)


class Campaign:
    def __init__(self, clock: FakeClock, lock: FakeLock, **kw: Any) -> None:
        self.registry = CollectorRegistry()
        self.elector = LeaderElector(lock, clock=clock, registry=self.registry, **kw)
        self.task = asyncio.ensure_future(self.elector.run())

    def gauge(self) -> float | None:
        return self.registry.get_sample_value("leader_is_leader")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def tasks() -> AsyncIterator[list[Campaign]]:
    started: list[Campaign] = []
    yield started
    for c in started:
        c.task.cancel()
    await asyncio.gather(*(c.task for c in started), return_exceptions=True)


async def test_acquires_a_free_lock_and_keeps_it_by_renewing(
    clock: FakeClock, tasks: list[Campaign]
) -> None:
    server = LockServer(clock, ttl=15.0)
    lock = server.client("a")
    c = Campaign(clock, lock)
    tasks.append(c)
    await clock.settle()
    assert c.elector.is_leader
    assert c.elector.leader_since == clock.now()
    assert c.elector.elected.is_set()
    assert c.gauge() == 1.0
    await clock.advance(300.0)
    assert c.elector.is_leader
    assert server.current() == "a"
    assert lock.renews == 60  # every 5 s


async def test_standby_takes_over_after_the_leader_releases(
    clock: FakeClock, tasks: list[Campaign]
) -> None:
    server = LockServer(clock, ttl=15.0)
    a = Campaign(clock, server.client("a"))
    tasks.append(a)
    await clock.settle()
    b = Campaign(clock, server.client("b"), retry_period=2.0)
    tasks.append(b)
    await clock.advance(30.0)
    assert a.elector.is_leader
    assert not b.elector.is_leader
    assert b.gauge() == 0.0
    await a.elector.release()
    assert not a.elector.is_leader
    await clock.advance(2.0)
    assert b.elector.is_leader
    assert server.current() == "b"


async def test_failing_renews_lose_leadership_at_the_deadline_before_the_ttl(
    clock: FakeClock, tasks: list[Campaign]
) -> None:
    server = LockServer(clock, ttl=15.0)
    lock = server.client("a")
    c = Campaign(clock, lock)  # deadline defaults to 2/3 of the TTL: 10 s
    tasks.append(c)
    await clock.advance(5.0)  # one good renew at t=5
    lock.mode = "fail"
    last_ok = clock.monotonic()
    lost_at = None
    while lost_at is None:
        await clock.advance(0.5)
        if c.elector.lost.is_set():
            lost_at = clock.monotonic()
    assert lost_at == last_ok + 10.0
    assert not c.elector.is_leader
    assert c.elector.leader_since is None
    assert c.gauge() == 0.0
    assert c.task.done()
    # We stepped down while the server still had us as holder: no two leaders at once.
    assert lost_at < server.expires
    assert server.current() == "a"


async def test_a_transient_renew_failure_is_retried_within_the_deadline(
    clock: FakeClock, tasks: list[Campaign]
) -> None:
    server = LockServer(clock, ttl=15.0)
    lock = server.client("a")
    c = Campaign(clock, lock, retry_period=2.0)
    tasks.append(c)
    await clock.advance(4.0)
    lock.mode = "fail"
    await clock.advance(3.0)  # renew at t=5 fails, retry at t=7 fails
    lock.mode = "ok"
    await clock.advance(2.0)  # retry at t=9 succeeds
    await clock.advance(60.0)
    assert c.elector.is_leader
    assert not c.elector.lost.is_set()


async def test_hanging_renews_time_out_and_lose_leadership(
    clock: FakeClock, tasks: list[Campaign]
) -> None:
    server = LockServer(clock, ttl=15.0)
    lock = server.client("a")
    c = Campaign(clock, lock)
    tasks.append(c)
    await clock.settle()
    lock.mode = "hang"
    await clock.advance(10.0)
    assert c.elector.lost.is_set()
    assert not c.elector.is_leader


async def test_a_refused_renew_loses_at_once(clock: FakeClock, tasks: list[Campaign]) -> None:
    server = LockServer(clock, ttl=15.0)
    c = Campaign(clock, server.client("a"))
    tasks.append(c)
    await clock.settle()
    server.holder = "intruder"  # e.g. an operator force-released and someone else took it
    server.expires = clock.monotonic() + 100
    await clock.advance(5.0)
    assert c.elector.lost.is_set()
    assert not c.elector.is_leader


async def test_acquire_errors_are_retried(clock: FakeClock, tasks: list[Campaign]) -> None:
    server = LockServer(clock, ttl=15.0)
    lock = server.client("a")
    lock.mode = "fail"
    c = Campaign(clock, lock, retry_period=2.0)
    tasks.append(c)
    await clock.advance(5.0)
    assert not c.elector.is_leader
    lock.mode = "ok"
    await clock.advance(2.0)
    assert c.elector.is_leader
    assert lock.acquires == 4  # t = 0, 2, 4 failed; t = 6 succeeded


async def test_release_frees_the_lock_for_others(clock: FakeClock, tasks: list[Campaign]) -> None:
    server = LockServer(clock, ttl=15.0)
    c = Campaign(clock, server.client("a"))
    tasks.append(c)
    await clock.settle()
    await c.elector.release()
    assert server.current() is None
    assert c.gauge() == 0.0


@pytest.mark.parametrize(
    ("ttl", "renew", "deadline"),
    [(15.0, 5.0, 15.0), (15.0, 10.0, 10.0), (15.0, 0.0, 10.0), (10.0, 5.0, 12.0)],
)
def test_rejects_timings_that_allow_two_leaders(ttl: float, renew: float, deadline: float) -> None:
    lock = LockServer(FakeClock()).client("a")
    with pytest.raises(ValueError, match="renew_deadline"):
        LeaderElector(
            lock, clock=FakeClock(), ttl=ttl, renew_interval=renew, renew_deadline=deadline
        )
