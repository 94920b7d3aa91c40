"""The boundaries other devstack parts plug into: alloc hooks and task drivers.

``AllocHooks`` is told when an allocation becomes running and when it stops (the Consul
side registers services from it). A ``TaskDriver`` runs one task of an allocation; the
client runner calls it and records Nomad's task events around the calls, and the driver
reports back through the ``TaskContext`` it is given (events, state changes, exits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from devstack.nomad.taskctx import TaskContext


class AllocHooks(Protocol):
    async def on_alloc_running(self, alloc: dict[str, Any]) -> None: ...

    async def on_alloc_stopped(self, alloc: dict[str, Any]) -> None: ...


class TaskDriver(Protocol):
    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        """Return once the task runs; raise to fail the start (Driver Failure)."""

    async def stop(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        """Stop the task (honour task KillTimeout/KillSignal); return once it is gone."""

    async def signal(
        self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext, signal: str
    ) -> None: ...

    async def restart(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        """Restart in place (stop + start); the runner records the restart events."""
