"""WorkQueue: client-go semantics on a fake clock (dedup, stingy, delays, backoff, shutdown)."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from controller.runtime.clock import FakeClock
from controller.runtime.ratelimit import ItemExponential, MaxOf, TokenBucket
from controller.runtime.workqueue import QueueShutDown, WorkQueue

pytestmark = pytest.mark.timeout(30)


def make_queue(
    clock: FakeClock, registry: CollectorRegistry | None = None, name: str = "q"
) -> WorkQueue[str]:
    limiter: MaxOf[str] = MaxOf(
        ItemExponential(base=1.0, cap=8.0), TokenBucket(qps=1000.0, burst=1000, clock=clock)
    )
    return WorkQueue(name=name, clock=clock, limiter=limiter, registry=registry)


async def drain_ready(q: WorkQueue[str]) -> list[str]:
    """Take every ready key without blocking (they stay in processing until done())."""
    return [await q.get() for _ in range(len(q))]


async def test_adds_coalesce_and_order_is_fifo() -> None:
    q = make_queue(FakeClock())
    for k in ["a", "b", "a", "c", "b", "a"]:
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_readd_while_processing_runs_exactly_once_more_after_done() -> None:
    q = make_queue(FakeClock())
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0, "a key in processing must not be handed to another worker"
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue() -> None:
    q = make_queue(FakeClock())
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0
    assert q.in_flight == frozenset()


async def test_get_waits_for_an_add() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    getter = asyncio.ensure_future(q.get())
    await clock.settle()
    assert not getter.done()
    q.add("x")
    assert await getter == "x"


async def test_cancelled_getter_does_not_swallow_the_wakeup() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await clock.settle()
    q.add("x")  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    assert await asyncio.wait_for(second, 5) == "x"


async def test_add_after_fires_at_its_time_only() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("a", 10.0)
    await clock.advance(9.9)
    assert len(q) == 0
    assert q.waiting == 1
    await clock.advance(0.1)
    assert len(q) == 1
    assert q.waiting == 0


async def test_add_after_earliest_wins() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("a", 10.0)
    q.add_after("a", 3.0)  # earlier: replaces
    q.add_after("a", 7.0)  # later: ignored
    await clock.advance(3.0)
    assert await drain_ready(q) == ["a"]
    q.done("a")
    await clock.advance(20.0)
    assert len(q) == 0, "the superseded delayed entries must not fire again"


async def test_add_after_orders_several_keys_by_ready_time() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("late", 5.0)
    q.add_after("early", 1.0)
    q.add_after("now", 0.0)
    assert await drain_ready(q) == ["now"]
    await clock.advance(1.0)
    assert await drain_ready(q) == ["early"]
    await clock.advance(4.0)
    assert await drain_ready(q) == ["late"]


async def test_delayed_key_already_dirty_is_not_duplicated() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add("a")
    q.add_after("a", 1.0)
    await clock.advance(1.0)
    assert len(q) == 1


async def test_rate_limited_adds_back_off_exponentially_and_forget_resets() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    ready_times: list[float] = []
    for _ in range(4):
        start = clock.monotonic()
        q.add_rate_limited("a")
        while not len(q):
            await clock.advance(0.5)
        ready_times.append(clock.monotonic() - start)
        await q.get()
        q.done("a")
    assert ready_times == [1.0, 2.0, 4.0, 8.0]
    assert q.num_requeues("a") == 4
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.add_rate_limited("a")
    await clock.advance(1.0)
    assert len(q) == 1


async def test_no_key_is_ever_processed_by_two_workers() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(5)]
    busy: set[str] = set()
    overlaps: list[str] = []
    runs: dict[str, int] = dict.fromkeys(keys, 0)
    last_add: dict[str, float] = {}
    last_start: dict[str, float] = {}

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            if key in busy:
                overlaps.append(key)
            busy.add(key)
            last_start[key] = clock.monotonic()
            runs[key] += 1
            await clock.sleep(rng.choice([0.1, 0.5, 1.0]))
            busy.discard(key)
            q.done(key)

    workers = [asyncio.ensure_future(worker()) for _ in range(4)]
    for _ in range(200):
        key = rng.choice(keys)
        q.add(key)
        last_add[key] = clock.monotonic()
        await clock.advance(rng.choice([0.0, 0.1, 0.3]))
    await clock.advance(50.0)
    assert overlaps == []
    for key, added in last_add.items():
        assert last_start[key] >= added, f"{key}: its last add was never followed by a run"
    assert sum(runs.values()) < 200, "bursts must coalesce"
    await q.shutdown()
    await asyncio.gather(*workers)


async def test_shutdown_immediate_wakes_getters_and_ignores_adds() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    getter = asyncio.ensure_future(q.get())
    await clock.settle()
    assert await q.shutdown() is True
    with pytest.raises(QueueShutDown):
        await getter
    q.add("a")
    q.add_after("b", 1.0)
    q.add_rate_limited("c")
    assert len(q) == 0
    assert q.waiting == 0
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_stops_handing_out_pending_keys() -> None:
    q = make_queue(FakeClock())
    q.add("a")
    await q.shutdown()
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_with_drain_waits_for_in_flight_keys() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add("a")
    await q.get()
    q.add("a")  # dirty while processing: must not come back after shutdown
    stopping = asyncio.ensure_future(q.shutdown(drain=True, grace=10.0))
    await clock.advance(5.0)
    assert not stopping.done()
    q.done("a")
    assert await stopping is True
    assert len(q) == 0


async def test_shutdown_with_drain_gives_up_after_the_grace_period() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add("a")
    await q.get()
    stopping = asyncio.ensure_future(q.shutdown(drain=True, grace=10.0))
    await clock.advance(10.0)
    assert stopping.done()
    assert stopping.result() is False
    assert q.in_flight == frozenset({"a"})


async def test_metrics_depth_adds_retries_per_queue_on_a_shared_registry() -> None:
    clock = FakeClock()
    registry = CollectorRegistry()
    q1 = make_queue(clock, registry, name="one")
    q2 = make_queue(clock, registry, name="two")
    make_queue(clock)  # a private registry each: no clash either
    make_queue(clock)
    q1.add("a")
    q1.add("a")
    q1.add("b")
    q2.add_rate_limited("x")
    await clock.advance(1.0)

    def sample(metric: str, name: str) -> float | None:
        return registry.get_sample_value(metric, {"name": name})

    assert sample("workqueue_depth", "one") == 2.0
    assert sample("workqueue_adds_total", "one") == 2.0
    assert sample("workqueue_retries_total", "one") == 0.0
    assert sample("workqueue_depth", "two") == 1.0
    assert sample("workqueue_retries_total", "two") == 1.0
    await q1.get()
    assert sample("workqueue_depth", "one") == 1.0


KEYS = st.sampled_from(["a", "b", "c"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), KEYS),
        st.tuples(st.just("after"), KEYS, st.sampled_from([0.0, 0.5, 1.0, 3.0])),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 2.0])),
        st.tuples(st.just("get")),
        st.tuples(st.just("done"), st.integers(0, 2)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_queue_matches_a_simple_model(ops: list[tuple[object, ...]]) -> None:
    """Random operation sequences against a model: what needs a run, and what is in flight."""

    async def scenario() -> None:
        clock = FakeClock()
        q = make_queue(clock)
        now = 0.0
        pending: set[str] = set()  # keys that need a run that has not started yet
        scheduled: dict[str, float] = {}
        inflight: list[str] = []
        for op in ops:
            kind = op[0]
            if kind == "add":
                q.add(str(op[1]))
                pending.add(str(op[1]))
            elif kind == "after":
                key, delay = str(op[1]), float(op[2])  # type: ignore[arg-type]
                q.add_after(key, delay)
                if delay <= 0:
                    pending.add(key)
                else:
                    scheduled[key] = min(scheduled.get(key, float("inf")), now + delay)
            elif kind == "advance":
                now += float(op[1])  # type: ignore[arg-type]
                await clock.advance(float(op[1]))  # type: ignore[arg-type]
                for key, at in list(scheduled.items()):
                    if at <= now:
                        pending.add(key)
                        del scheduled[key]
            elif kind == "get" and len(q):
                key = await q.get()
                assert key in pending
                assert key not in inflight, "a key was handed to two workers"
                pending.discard(key)
                inflight.append(key)
            elif kind == "done" and inflight:
                q.done(inflight.pop(int(op[1]) % len(inflight)))  # type: ignore[call-overload]
            assert len(q) == len(pending - set(inflight))
        for key in inflight:
            q.done(key)
        await clock.advance(100.0)
        pending |= set(scheduled)
        ran = [await q.get() for _ in range(len(q))]
        assert sorted(ran) == sorted(pending), "every key that needed a run gets exactly one"

    asyncio.run(scenario())


# --- priority lanes -------------------------------------------------------------------------


async def test_low_priority_keys_wait_behind_every_other_ready_key() -> None:
    q = make_queue(FakeClock())
    for k in ["r1", "r2", "r3"]:
        q.add(k, low_priority=True)
    q.add("user")
    assert len(q) == 4
    assert await drain_ready(q) == ["user", "r1", "r2", "r3"]


async def test_adding_a_low_priority_key_again_without_it_moves_it_ahead_once() -> None:
    q = make_queue(FakeClock())
    for k in ["r1", "r2", "r3"]:
        q.add(k, low_priority=True)
    q.add("r3")
    q.add("r3", low_priority=True)  # a later LIST does not demote it
    assert len(q) == 3
    assert await drain_ready(q) == ["r3", "r1", "r2"]
    assert len(q) == 0


async def test_a_key_readded_while_processing_runs_again_at_the_highest_priority_asked() -> None:
    q = make_queue(FakeClock())
    q.add("a")
    assert await q.get() == "a"
    q.add("a", low_priority=True)
    q.add("b", low_priority=True)
    q.done("a")
    assert await drain_ready(q) == ["b", "a"]  # both low: first come, first served
    q.done("a")
    q.done("b")
    q.add("a")
    assert await q.get() == "a"
    q.add("b", low_priority=True)
    q.add("a", low_priority=True)
    q.add("a")  # an event while it was processing
    q.done("a")
    assert await drain_ready(q) == ["a", "b"]


async def test_a_delayed_low_priority_add_lands_in_the_low_lane_unless_raised() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("listed", 2.0, low_priority=True)
    q.add_after("raised", 2.0, low_priority=True)
    q.add_after("raised", 5.0)  # later, normal: the earlier time wins, at normal priority
    await clock.advance(2.0)
    q.add("event")
    assert await drain_ready(q) == ["raised", "event", "listed"]
    assert q.waiting == 0
    for key in ("raised", "event", "listed"):
        q.done(key)
    await clock.advance(10.0)
    assert len(q) == 0, "the entry the promotion replaced must not fire again"


async def test_a_promoted_delayed_key_keeps_its_place_among_keys_due_with_it() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("first", 2.0, low_priority=True)
    q.add_after("second", 2.0)
    q.add_after("first", 2.0)  # same time, raised: still parked ahead of "second"
    await clock.advance(2.0)
    assert await drain_ready(q) == ["first", "second"]


class Model:
    """The reference: the same queue as plain lists (O(n) each step, obviously right)."""

    def __init__(self) -> None:
        self.ready: list[tuple[str, bool]] = []  # (key, low) in arrival order
        self.dirty: dict[str, bool] = {}
        self.processing: set[str] = set()

    def add(self, k: str, low: bool) -> None:
        if k in self.dirty:
            promoted = self.dirty[k] and not low
            self.dirty[k] = self.dirty[k] and low
            if promoted and any(x == k for x, _ in self.ready):
                # served in the front lane from now on, after the keys already there
                self.ready = [e for e in self.ready if e[0] != k] + [(k, False)]
            return
        self.dirty[k] = low
        if k not in self.processing:
            self.ready.append((k, low))

    def get(self) -> str:
        front = [e for e in self.ready if not e[1]]
        k = (front or self.ready)[0][0]
        self.ready = [e for e in self.ready if e[0] != k]
        del self.dirty[k]
        self.processing.add(k)
        return k

    def done(self, k: str) -> None:
        self.processing.discard(k)
        if k in self.dirty:
            self.ready.append((k, self.dirty[k]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "low", "get", "done"]), st.sampled_from("abcde")),
        max_size=60,
    )
)
def test_the_two_lanes_hand_out_keys_as_the_reference_model_does(
    steps: list[tuple[str, str]],
) -> None:
    async def run() -> None:
        q = make_queue(FakeClock())
        m = Model()
        for op, k in steps:
            if op in ("add", "low"):
                q.add(k, low_priority=op == "low")
                m.add(k, op == "low")
            elif op == "get" and m.ready:
                assert await q.get() == m.get()
            elif op == "done" and k in m.processing:
                q.done(k)
                m.done(k)
            assert len(q) == len(m.ready)
            assert q.in_flight == frozenset(m.processing)
        left = len(m.ready)
        assert [await q.get() for _ in range(left)] == [m.get() for _ in range(left)]

    asyncio.run(run())


async def test_a_queue_that_drained_a_burst_keeps_every_rule_for_new_keys() -> None:
    """After a burst drains, its emptied tables are replaced (their capacity is released):
    dedup, the lanes, the re-add while processing and the delays still hold."""
    clock = FakeClock()
    q = make_queue(clock)
    burst = [f"job-{i}" for i in range(500)]
    for key in burst:
        q.add(key, low_priority=True)
    q.add_after("parked", 1.0)
    assert await drain_ready(q) == burst
    for key in burst:
        q.done(key)
    await clock.advance(1.0)
    assert await drain_ready(q) == ["parked"]
    q.add("parked")  # re-added while processing: one more run once done
    for key in ["b", "a", "b"]:
        q.add(key, low_priority=key == "b")
    assert len(q) == 2
    assert await drain_ready(q) == ["a", "b"]
    q.done("parked")
    assert await drain_ready(q) == ["parked"]
    q.add_after("later", 2.0, low_priority=True)
    q.add_after("later", 2.0)
    await clock.advance(2.0)
    assert await drain_ready(q) == ["later"]
    assert q.waiting == 0
