"""The boundaries other devstack parts plug into: alloc hooks and task drivers.

``AllocHooks`` is told when an allocation becomes running, when it is about to be stopped and
when it has stopped (the Consul side registers and deregisters services from it). The stopping
call comes before any kill, as Nomad's service hooks run: the group's services before the
group's shutdown delay and the first task kill, a task's services after its Killing event and
before its own shutdown delay. A ``TaskDriver`` runs one task of an allocation; the
client runner calls it and records Nomad's task events around the calls, and the driver
reports back through the ``TaskContext`` it is given (events, state changes, exits).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from devstack.nomad.taskctx import TaskContext


class AllocHooks(Protocol):
    async def on_alloc_running(self, alloc: dict[str, Any]) -> None: ...

    async def on_alloc_stopping(self, alloc: dict[str, Any], task: str | None) -> None:
        """Deregister the group's services (`task` None) or one task's, before the kill."""

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


@dataclass(frozen=True)
class CheckView:
    """One check of a service registration as the service catalog reports it.

    What Nomad's health tracker reads from ``serviceregistration.AllocRegistration``: the
    check's name (checks are matched by name and count, ``evaluateConsulChecks``) and its
    status (``passing`` / ``warning`` / ``critical``)."""

    service: str
    name: str
    status: str


@runtime_checkable
class ServiceChecks(Protocol):
    """Where the client reads the checks of an allocation's registered services.

    Nomad's client asks its Consul agent (``serviceregistration.Handler.AllocRegistrations``,
    polled every 500 ms by ``client/allochealth/tracker.go`` ``watchConsulEvents``). The twin
    is given this narrow seam instead of importing the Consul twin: the devstack wires the
    registrar, which answers it over Consul's HTTP API. Without one, the client sees no
    registrations, exactly as a Nomad client whose Consul never registered the checks."""

    async def alloc_checks(self, alloc_ids: Collection[str]) -> Mapping[str, list[CheckView]]:
        """The registered checks per allocation ID (an allocation without any: absent or [])."""
