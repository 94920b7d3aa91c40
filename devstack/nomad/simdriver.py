"""The default driver for every driver name: no process, just Nomad's task life cycle.

Start takes a short delay (so clients see pending before running), stop and restart
succeed at once, and signals are accepted. Tasks thus move pending -> running -> dead
with the same events a real driver produces, at scale and without processes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from devstack.nomad.taskctx import TaskContext


class SimulatedDriver:
    def __init__(self, start_delay: float = 0.05) -> None:
        self.start_delay = start_delay
        self.signals: list[tuple[str, str, str]] = []  # (alloc id, task, signal)
        self.restarts: list[tuple[str, str]] = []

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        await asyncio.sleep(self.start_delay)
        life = task.get("Lifecycle") or {}
        ephemeral = bool(life.get("Hook")) and not life.get("Sidecar")
        if ephemeral or alloc["Job"]["Type"] in ("batch", "sysbatch"):
            # Work that ends by itself: exit successfully soon after starting.
            loop = asyncio.get_running_loop()
            loop.call_later(self.start_delay, ctx.task_exited, 0)

    async def stop(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async def signal(
        self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext, signal: str
    ) -> None:
        self.signals.append((alloc["ID"], task["Name"], signal))

    async def restart(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.restarts.append((alloc["ID"], task["Name"]))
