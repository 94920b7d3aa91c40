"""The coalesced writes' due times: each path handed over once its time has come, in time
order, and the loop wakes for a path scheduled earlier than the one it waits for."""

from __future__ import annotations

import asyncio

from controller.runtime.clock import FakeClock
from controller.status.schedule import FlushSchedule


def test_due_pops_each_path_once_when_its_time_has_come() -> None:
    clock = FakeClock(start=100.0)
    schedule = FlushSchedule(clock)
    schedule.at(101.0, "b")
    schedule.at(100.0, "a")
    schedule.at(100.5, "a")
    assert schedule.due() == ["a"]
    assert len(schedule) == 2
    schedule.clear()
    assert schedule.due() == [] and len(schedule) == 0


async def test_the_loop_flushes_as_times_come_and_wakes_for_an_earlier_one() -> None:
    clock = FakeClock(start=0.0)
    schedule = FlushSchedule(clock)
    flushed: list[tuple[float, list[str]]] = []

    async def flush(paths: list[str]) -> None:
        flushed.append((clock.monotonic(), paths))

    loop = asyncio.create_task(schedule.run(flush))
    try:
        schedule.at(5.0, "late")
        await clock.advance(0)
        schedule.at(1.0, "early")  # scheduled while the loop waits for 5.0
        await clock.advance(1.0)
        assert flushed == [(1.0, ["early"])]
        await clock.advance(4.0)
        assert flushed == [(1.0, ["early"]), (5.0, ["late"])]
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
