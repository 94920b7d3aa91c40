"""Controller: ``Result(requeue=True)`` goes through the key's backoff, like an error, but is
counted and logged as a requeue (an expected race is not a failure worth a warning)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from controller.runtime.clock import FakeClock
from controller.runtime.controller import Controller
from controller.runtime.ratelimit import ItemExponential
from controller.runtime.reconcile import Result
from controller.runtime.workqueue import WorkQueue

pytestmark = pytest.mark.timeout(30)


@dataclass
class Requeuing:
    """Asks for a rate-limited requeue ``times`` times, then succeeds; records when it ran."""

    clock: FakeClock
    times: int
    runs: list[float] = field(default_factory=list)
    last: Result | None = None

    async def reconcile(self, key: str) -> Result:
        self.runs.append(self.clock.monotonic())
        if len(self.runs) <= self.times:
            return self.last or Result(requeue=True)
        return Result()


@dataclass
class Rig:
    clock: FakeClock
    queue: WorkQueue[str]
    registry: CollectorRegistry

    def total(self, result: str) -> float:
        labels = {"controller": "t", "result": result}
        return self.registry.get_sample_value("controller_reconcile_total", labels) or 0.0


@contextlib.asynccontextmanager
async def _running(reconciler: Requeuing, clock: FakeClock) -> AsyncIterator[Rig]:
    registry = CollectorRegistry()
    queue: WorkQueue[str] = WorkQueue(
        name="t", clock=clock, limiter=ItemExponential(base=1.0, cap=16.0), registry=registry
    )
    ctl = Controller(
        name="t", reconciler=reconciler, queue=queue, clock=clock, workers=1, registry=registry
    )
    task = asyncio.ensure_future(ctl.run())
    try:
        yield Rig(clock, queue, registry)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_requeue_backs_off_exponentially_then_forgets_on_success() -> None:
    clock = FakeClock()
    reconciler = Requeuing(clock, times=4)
    async with _running(reconciler, clock) as rig:
        rig.queue.add("a")
        await clock.advance(1.0 + 2.0 + 4.0 + 8.0)
        start = reconciler.runs[0]
        assert [t - start for t in reconciler.runs] == [0.0, 1.0, 3.0, 7.0, 15.0]
        assert rig.total("requeue") == 4
        assert rig.total("error") == 0  # not a failure
        assert rig.total("success") == 1
        assert rig.queue.num_requeues("a") == 0  # the success forgot the backoff
        assert rig.registry.get_sample_value("workqueue_retries_total", {"name": "t"}) == 4


async def test_requeue_after_wins_over_requeue_and_resets_the_backoff() -> None:
    clock = FakeClock()
    reconciler = Requeuing(clock, times=1, last=Result(requeue=True, requeue_after=5.0))
    async with _running(reconciler, clock) as rig:
        rig.queue.add("a")
        await clock.advance(5.0)
        start = reconciler.runs[0]
        assert [t - start for t in reconciler.runs] == [0.0, 5.0]
        assert rig.total("requeue_after") == 1
        assert rig.total("requeue") == 0


async def test_a_requeue_is_logged_at_info_with_its_retry_count() -> None:
    clock = FakeClock()
    reconciler = Requeuing(clock, times=1)
    async with _running(reconciler, clock) as rig:
        with capture_logs() as logs:
            rig.queue.add("a")
            await clock.settle()
        lines = [e for e in logs if e.get("event") == "reconcile"]
        assert lines == [
            {
                "event": "reconcile",
                "log_level": "info",
                "result": "requeue",
                "duration_s": 0.0,
                "retries": 1,
            }
        ]
