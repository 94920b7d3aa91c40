"""Controller: the result switch, timeouts, reconcile_id/log line and metrics, on a fake clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import structlog
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from controller.runtime.clock import FakeClock
from controller.runtime.controller import Controller
from controller.runtime.ratelimit import ItemExponential
from controller.runtime.reconcile import Result, TerminalError
from controller.runtime.workqueue import WorkQueue

pytestmark = pytest.mark.timeout(30)


@dataclass
class ScriptedReconciler:
    """Does what a per-key script says; records when each key ran and what it saw."""

    clock: FakeClock
    script: dict[str, list[object]] = field(default_factory=dict)
    runs: dict[str, list[float]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def reconcile(self, key: str) -> Result:
        self.runs.setdefault(key, []).append(self.clock.monotonic())
        steps = self.script.get(key, [])
        step = steps.pop(0) if steps else Result()
        structlog.get_logger("test").info("inside", key_seen=key)
        if step == "hang":
            await asyncio.Event().wait()
        if step == "slow":
            await self.clock.sleep(2.0)
            return Result()
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, Result)
        return step


@dataclass
class Harness:
    clock: FakeClock
    queue: WorkQueue[str]
    reconciler: ScriptedReconciler
    controller: Controller[str]
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, {"controller": "test", **labels})
        return 0.0 if value is None else value


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock = FakeClock()
    registry = CollectorRegistry()
    queue: WorkQueue[str] = WorkQueue(
        name="test",
        clock=clock,
        limiter=ItemExponential(base=1.0, cap=16.0),
        registry=registry,
    )
    reconciler = ScriptedReconciler(clock)
    ctl = Controller(
        name="test",
        reconciler=reconciler,
        queue=queue,
        clock=clock,
        workers=2,
        reconcile_timeout=5.0,
        registry=registry,
    )
    task = asyncio.ensure_future(ctl.run())
    yield Harness(clock, queue, reconciler, ctl, registry)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_success_forgets_and_is_not_requeued(harness: Harness) -> None:
    h = harness
    h.reconciler.script["a"] = [RuntimeError("boom"), Result()]
    h.queue.add("a")
    await h.clock.advance(1.0)  # error, then the 1 s backoff, then success
    assert h.reconciler.runs["a"] == [1000.0, 1001.0]
    assert h.queue.num_requeues("a") == 0
    await h.clock.advance(100.0)
    assert len(h.reconciler.runs["a"]) == 2
    assert h.metric("controller_reconcile_total", result="success") == 1.0
    assert h.metric("controller_reconcile_total", result="error") == 1.0


async def test_errors_are_retried_with_growing_backoff(harness: Harness) -> None:
    h = harness
    h.reconciler.script["a"] = [RuntimeError("x")] * 4
    h.queue.add("a")
    await h.clock.advance(30.0)
    times = h.reconciler.runs["a"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [1.0, 2.0, 4.0, 8.0]
    assert h.metric("controller_reconcile_errors_total") == 4.0
    assert h.queue.num_requeues("a") == 0  # the fifth run succeeded and forgot


async def test_terminal_error_is_not_retried(harness: Harness) -> None:
    h = harness
    h.reconciler.script["a"] = [RuntimeError("transient"), TerminalError("invalid spec")]
    h.queue.add("a")
    await h.clock.advance(1000.0)
    assert len(h.reconciler.runs["a"]) == 2
    assert h.queue.num_requeues("a") == 0
    assert h.metric("controller_terminal_reconcile_errors_total") == 1.0
    assert h.metric("controller_reconcile_total", result="terminal") == 1.0
    h.queue.add("a")  # a new event still gets a fresh reconcile
    await h.clock.advance(0.0)
    assert len(h.reconciler.runs["a"]) == 3


async def test_requeue_after_resets_backoff_and_comes_back_on_time(harness: Harness) -> None:
    h = harness
    h.reconciler.script["a"] = [RuntimeError("x"), RuntimeError("x"), Result(requeue_after=30.0)]
    h.queue.add("a")
    await h.clock.advance(3.0)  # runs at +0 (err), +1 (err), +3 (requeue_after 30)
    assert h.queue.num_requeues("a") == 0
    await h.clock.advance(29.9)
    assert len(h.reconciler.runs["a"]) == 3
    await h.clock.advance(0.1)
    assert h.reconciler.runs["a"][-1] == 1033.0
    assert h.metric("controller_reconcile_total", result="requeue_after") == 1.0


async def test_stuck_reconcile_times_out_without_blocking_other_keys(harness: Harness) -> None:
    h = harness
    h.reconciler.script["stuck"] = ["hang"]
    h.queue.add("stuck")
    await h.clock.settle()
    for i in range(5):
        h.queue.add(f"k{i}")
    await h.clock.advance(1.0)
    assert all(len(h.reconciler.runs[f"k{i}"]) == 1 for i in range(5))
    assert h.queue.in_flight == frozenset({"stuck"})
    await h.clock.advance(4.0)  # the 5 s timeout fires: cancelled, counted, retried later
    assert h.metric("controller_reconcile_timeouts_total") == 1.0
    assert h.queue.in_flight == frozenset()
    await h.clock.advance(1.0)
    assert len(h.reconciler.runs["stuck"]) == 2


async def test_one_canonical_line_per_reconcile_with_bound_reconcile_id(harness: Harness) -> None:
    h = harness
    h.reconciler.script["a"] = [RuntimeError("boom"), Result()]
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        h.queue.add("a")
        h.queue.add("b")
        await h.clock.advance(1.0)
    canonical = [e for e in logs if e["event"] == "reconcile"]
    inside = [e for e in logs if e["event"] == "inside"]
    assert [(e["key"], e["result"]) for e in canonical] == [
        ("a", "error"),
        ("b", "success"),
        ("a", "success"),
    ]
    assert len({e["reconcile_id"] for e in canonical}) == 3
    for line in canonical:
        assert line["controller"] == "test"
        assert line["duration_s"] >= 0.0
        twin = [e for e in inside if e["reconcile_id"] == line["reconcile_id"]]
        assert [e["key_seen"] for e in twin] == [line["key"]]
    error_line = canonical[0]
    assert error_line["log_level"] == "warning"
    assert "boom" in error_line["error"]
    assert error_line["retries"] == 1


async def test_a_planned_reconcile_is_a_debug_line_a_failure_or_a_slow_one_is_not(
    harness: Harness,
) -> None:
    """Operators see what needs them (controller-runtime's verbosity): ``success`` and
    ``requeue_after`` at debug, unless the reconcile took the 1 s slow threshold or more."""
    h = harness
    h.reconciler.script["ok"] = [Result()]
    h.reconciler.script["later"] = [Result(requeue_after=60.0)]
    h.reconciler.script["slow"] = ["slow"]
    h.reconciler.script["bad"] = [TerminalError("no such role")]
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        for key in ("ok", "later", "slow", "bad"):
            h.queue.add(key)
        await h.clock.advance(2.0)
    levels = {e["key"]: e["log_level"] for e in logs if e["event"] == "reconcile"}
    assert levels == {"ok": "debug", "later": "debug", "slow": "info", "bad": "warning"}


async def test_durations_come_from_the_clock(harness: Harness) -> None:
    h = harness
    h.reconciler.script["a"] = ["slow"]
    with capture_logs() as logs:
        h.queue.add("a")
        await h.clock.advance(2.0)
    (line,) = [e for e in logs if e["event"] == "reconcile"]
    assert line["duration_s"] == 2.0
    assert h.registry.get_sample_value(
        "controller_reconcile_time_seconds_sum", {"controller": "test"}
    ) == pytest.approx(2.0)


async def test_drain_lets_in_flight_reconciles_finish_and_run_returns() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(name="d", clock=clock, limiter=ItemExponential())
    rec = ScriptedReconciler(clock, script={"a": ["slow"]})
    ctl = Controller(name="d", reconciler=rec, queue=queue, clock=clock, workers=3)
    running = asyncio.ensure_future(ctl.run())
    queue.add("a")
    await clock.settle()
    draining = asyncio.ensure_future(ctl.drain(10.0))
    await clock.advance(1.0)
    assert not draining.done()
    await clock.advance(1.0)
    assert await draining is True
    await asyncio.wait_for(running, 5)
    assert rec.runs == {"a": [1000.0]}


def test_rejects_zero_workers() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(name="z", clock=clock, limiter=ItemExponential())
    with pytest.raises(ValueError, match="workers"):
        Controller(
            name="z",
            reconciler=ScriptedReconciler(clock),
            queue=queue,
            clock=clock,
            workers=0,
        )
