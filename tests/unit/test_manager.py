"""Manager: always-on vs leader-only groups, graceful stop, lost leadership, crashes, signals."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.runtime.clock import FakeClock
from controller.runtime.controller import Controller
from controller.runtime.leader import LeaderElector
from controller.runtime.manager import Manager, Runnable
from controller.runtime.ratelimit import ItemExponential
from controller.runtime.reconcile import Result
from controller.runtime.workqueue import WorkQueue
from tests.support.runtime_fakes import LockServer, RecordingRunnable
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)


@dataclass
class SlowReconciler:
    """Each reconcile takes ``seconds`` of fake time; records finished keys."""

    clock: FakeClock
    seconds: float = 4.0
    finished: list[tuple[str, float]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    async def reconcile(self, key: str) -> Result:
        try:
            await self.clock.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        self.finished.append((key, self.clock.monotonic()))
        return Result()


@dataclass
class World:
    clock: FakeClock
    server: LockServer
    http: RecordingRunnable
    source: RecordingRunnable
    queue: WorkQueue[str]
    reconciler: SlowReconciler
    controller: Controller[str]

    def runnables(self) -> list[Runnable]:
        return [self.http, self.source, self.controller]

    def elector(self, identity: str = "me", **kw: Any) -> LeaderElector:
        return LeaderElector(self.server.client(identity), clock=self.clock, **kw)


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(name="w", clock=clock, limiter=ItemExponential())
    rec = SlowReconciler(clock)
    return World(
        clock=clock,
        server=LockServer(clock, ttl=15.0),
        http=RecordingRunnable("http", needs_leader=False, clock=clock),
        source=RecordingRunnable("source", needs_leader=True, clock=clock),
        queue=queue,
        reconciler=rec,
        controller=Controller(name="w", reconciler=rec, queue=queue, clock=clock, workers=2),
    )


async def test_without_election_everything_runs_and_stop_drains_then_exits_0(
    world: World,
) -> None:
    w = world
    mgr = Manager(runnables=w.runnables(), clock=w.clock, handle_signals=False, drain_timeout=30)
    run = asyncio.ensure_future(mgr.run())
    await w.clock.settle()
    assert w.http.running
    assert w.source.running
    w.queue.add("a")
    await w.clock.advance(1.0)
    mgr.request_stop()
    await w.clock.settle()
    assert not w.source.running, "sources stop first, so no new keys arrive while draining"
    assert not run.done(), "the in-flight reconcile is still draining"
    await w.clock.advance(3.0)
    assert await run == 0
    assert w.reconciler.finished == [("a", 1004.0)]
    assert w.reconciler.cancelled == []
    assert not w.http.running


async def test_standby_runs_only_always_on_until_elected(world: World) -> None:
    w = world
    w.server.holder, w.server.expires = "other", w.clock.monotonic() + 15.0
    mgr = Manager(
        runnables=w.runnables(),
        clock=w.clock,
        elector=w.elector(retry_period=2.0),
        handle_signals=False,
    )
    run = asyncio.ensure_future(mgr.run())
    await w.clock.advance(10.0)
    assert w.http.running
    assert w.source.started == []
    assert not mgr.leading
    await w.clock.advance(6.0)  # the other holder's lease ran out at t=15; we retry at t=16
    assert w.source.running
    assert mgr.leading
    mgr.request_stop()
    assert await run == 0
    assert w.server.current() is None, "a graceful stop releases the lock"


async def test_lost_leadership_cancels_leader_work_without_drain_and_exits_1(
    world: World,
) -> None:
    w = world
    w.reconciler.seconds = 100.0
    lock = w.server.client("me")
    elector = LeaderElector(lock, clock=w.clock)
    mgr = Manager(runnables=w.runnables(), clock=w.clock, elector=elector, handle_signals=False)
    run = asyncio.ensure_future(mgr.run())
    await w.clock.settle()
    assert w.source.running
    w.queue.add("a")
    await w.clock.advance(1.0)
    lock.mode = "fail"
    await w.clock.advance(10.0)
    assert run.done()
    assert run.result() == 1
    assert w.reconciler.cancelled == ["a"], "a deposed leader must not finish its writes"
    assert w.reconciler.finished == []
    assert not w.source.running
    assert not w.http.running
    assert lock.releases == 0


async def test_a_crashing_runnable_shuts_down_and_exits_1(world: World) -> None:
    w = world
    w.source.crash_after = 3.0
    mgr = Manager(runnables=w.runnables(), clock=w.clock, elector=w.elector(), handle_signals=False)
    run = asyncio.ensure_future(mgr.run())
    await w.clock.advance(3.0)
    assert await run == 1
    assert not w.http.running
    assert w.server.current() is None


async def test_sigterm_is_a_graceful_stop(world: World) -> None:
    w = world
    mgr = Manager(runnables=w.runnables(), clock=w.clock, elector=w.elector())
    run = asyncio.ensure_future(mgr.run())
    await w.clock.settle()
    assert w.source.running
    os.kill(os.getpid(), signal.SIGTERM)
    # The signal arrives through the loop's self-pipe.
    await eventually(run.done, within=5.0, every=0.01, what="the manager stopped on SIGTERM")
    assert await run == 0
    assert w.server.current() is None
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "the handler is removed again"


async def test_drain_timeout_bounds_the_stop(world: World) -> None:
    w = world
    w.reconciler.seconds = 1000.0
    mgr = Manager(runnables=w.runnables(), clock=w.clock, handle_signals=False, drain_timeout=5)
    run = asyncio.ensure_future(mgr.run())
    w.queue.add("a")
    await w.clock.settle()
    mgr.request_stop()
    await w.clock.advance(5.0)
    await w.clock.advance(1.0)
    assert await run == 0
    assert w.reconciler.cancelled == ["a"]


@dataclass
class HandOver:
    """An ``on_leader_stop`` hook: records how leadership ended and what was true then."""

    world: World
    seen: list[tuple[bool, list[str], bool]] = field(default_factory=list)

    async def __call__(self, graceful: bool) -> None:
        finished = [key for key, _ in self.world.reconciler.finished]
        self.seen.append((graceful, finished, self.world.server.current() is not None))


async def test_a_graceful_stop_hands_over_after_the_drain_and_before_the_release(
    world: World,
) -> None:
    w = world
    hook = HandOver(w)
    mgr = Manager(
        runnables=w.runnables(),
        clock=w.clock,
        elector=w.elector(),
        handle_signals=False,
        on_leader_stop=[hook],
    )
    run = asyncio.ensure_future(mgr.run())
    await w.clock.settle()
    w.queue.add("a")
    await w.clock.advance(1.0)
    mgr.request_stop()
    await w.clock.advance(4.0)
    assert await run == 0
    assert hook.seen == [(True, ["a"], True)]  # after the in-flight reconcile, lock still held
    assert w.server.current() is None


async def test_lost_leadership_runs_the_hook_as_not_graceful(world: World) -> None:
    w = world
    lock = w.server.client("me")
    hook = HandOver(w)
    mgr = Manager(
        runnables=w.runnables(),
        clock=w.clock,
        elector=LeaderElector(lock, clock=w.clock),
        handle_signals=False,
        on_leader_stop=[hook],
    )
    run = asyncio.ensure_future(mgr.run())
    await w.clock.settle()
    lock.mode = "fail"
    await w.clock.advance(10.0)
    assert run.result() == 1
    assert [graceful for graceful, _, _ in hook.seen] == [False]


async def test_a_standby_that_never_led_has_nothing_to_hand_over(world: World) -> None:
    w = world
    w.server.holder, w.server.expires = "other", w.clock.monotonic() + 100.0
    hook = HandOver(w)
    mgr = Manager(
        runnables=w.runnables(),
        clock=w.clock,
        elector=w.elector(retry_period=2.0),
        handle_signals=False,
        on_leader_stop=[hook],
    )
    run = asyncio.ensure_future(mgr.run())
    await w.clock.advance(5.0)
    mgr.request_stop()
    assert await run == 0
    assert hook.seen == []
