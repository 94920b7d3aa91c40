"""wait_for on the real clock: the result, the timeout, and nothing left running behind it."""

from __future__ import annotations

import asyncio

import pytest

from controller.runtime.clock import SystemClock, WaitTimeout, wait_for

CLOCK = SystemClock()


async def test_the_result_comes_back() -> None:
    async def work() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await wait_for(CLOCK, work(), 5.0) == "done"


async def test_a_stuck_awaitable_is_cancelled_and_finished_before_the_timeout_is_raised() -> None:
    ended: list[str] = []

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("unwound")

    with pytest.raises(WaitTimeout):
        await wait_for(CLOCK, stuck(), 0.01)
    assert ended == ["unwound"]


async def test_a_timeout_raised_by_the_awaited_code_is_its_own() -> None:
    async def fails() -> None:
        raise TimeoutError("the peer did not answer")

    with pytest.raises(TimeoutError, match="peer") as info:
        await wait_for(CLOCK, fails(), 5.0)
    assert not isinstance(info.value, WaitTimeout)


async def test_cancelling_the_caller_cancels_the_awaitable() -> None:
    ended: list[str] = []
    started = asyncio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("unwound")

    caller = asyncio.ensure_future(wait_for(CLOCK, stuck(), 60.0))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert ended == ["unwound"]
