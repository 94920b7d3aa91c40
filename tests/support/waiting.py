"""The one way a test waits for the world: poll a check until it holds, within a deadline.

The twins, OpenBao, nginx and the controller run in real time, and much of what a test waits for
(a stored job version, a check status, a process exit) is not pushed to it. A fixed sleep is
either flaky or slow; a bounded poll of world state is neither. Every test uses this helper so
that a timeout always fails the same way: an AssertionError naming what did not hold and the
last value seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    within: float = 10.0,
    every: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``check`` (sync or async) until it returns something truthy, and return that.

    Fails with AssertionError once ``within`` seconds of real time have passed. The check always
    runs at least once more after the deadline would have been crossed by the sleep, so a slow
    machine gets the full budget.
    """
    deadline = time.monotonic() + within
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within}s (last value: {value!r})")
        await asyncio.sleep(every)
