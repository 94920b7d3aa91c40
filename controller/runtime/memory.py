"""Give the C heap's free pages back to the kernel now and then (glibc's ``malloc_trim``).

CPython's own allocator returns a 1 MiB arena to the kernel when the arena empties, but every
block over 512 bytes (a job's dicts and its JSON text, response bodies, compressor state,
pickles) comes from glibc's malloc, which gives memory back only from the top of its heap. After
a burst (the fill, a cold start, churn), the chunks freed below a live one stay resident until
reused: the process keeps its high-water as RSS. ``malloc_trim(0)`` releases every free page of
every arena, wherever it lies (madvise), in a few milliseconds. Elsewhere than glibc there is
nothing to call, and the loop only sleeps.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

from controller.runtime.clock import Clock


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a function returning 1 when memory was released; None
    off glibc (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


async def trim_loop(clock: Clock, interval: float) -> None:
    """Trim every ``interval`` seconds until cancelled."""
    trim = malloc_trim()
    while True:
        await clock.sleep(interval)
        if trim is not None:
            trim()
