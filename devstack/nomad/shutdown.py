"""Nomad's shutdown delays for one allocation being stopped.

A Nomad client stops an allocation in this order: the group's services are deregistered, the
group's ``ShutdownDelay`` passes (logged only, no task event), then each task gets its Killing
event, its own services are deregistered, and its own ``ShutdownDelay`` passes ("Waiting for
shutdown delay", the task state back to pending) before the kill signal. The delays are what
let clients that resolved an instance a moment ago finish their requests. A task that exits
during its delay ends the wait; an agent shutdown ends every wait at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from devstack import godur
from devstack.nomad.codec import NS


def group_of(alloc: dict[str, Any]) -> dict[str, Any]:
    groups = alloc["Job"]["TaskGroups"]
    return next(g for g in groups if g["Name"] == alloc["TaskGroup"])


def group_delay(alloc: dict[str, Any]) -> int:
    """The allocation's group ShutdownDelay in nanoseconds (0 when unset)."""
    return int(group_of(alloc).get("ShutdownDelay") or 0)


def task_delay(task: dict[str, Any]) -> int:
    return int(task.get("ShutdownDelay") or 0)


def waiting_message(delay_ns: int) -> str:
    """The event's display text, Go duration formatting included."""
    return f"Waiting for shutdown_delay of {godur.format_ns(delay_ns)} before killing the task."


class ShutdownDelays:
    def __init__(self, tasks: Iterable[str]) -> None:
        self._skip = asyncio.Event()
        self._exited = {name: asyncio.Event() for name in tasks}

    def task_exited(self, name: str) -> None:
        self._exited[name].set()

    def skip(self) -> None:
        """End every delay now and later (the twin is shutting down)."""
        self._skip.set()

    async def wait(self, delay_ns: int, task: str | None = None) -> None:
        if delay_ns <= 0 or self._skip.is_set():
            return
        events = [self._skip] + ([self._exited[task]] if task is not None else [])
        wakers = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(wakers, timeout=delay_ns / NS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waker in wakers:
                waker.cancel()
