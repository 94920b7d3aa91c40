"""Event routing: which work queues an interesting job's change lands in, and after what delay.

controller-runtime gives each controller its own event handler ("enqueue this key for me");
here one source feeds three controllers, so the handlers are one declarative table instead of
code hidden in the composition root:

- a Job change is injected at once (mesh), health-checked once the new version had a moment to
  start (health), and checked for missed renewals later still (certs);
- an Allocation change is debounced into mesh (rollout progress) and health: a rolling
  deployment's burst of allocation updates costs one reconcile per queue, not one per update.
  Certificates do not change with allocations, so certs is not told.
- a Deployment change (Nomad judged the version: successful, failed, canaries placed) is
  debounced into mesh, whose RolledOut condition and retries follow it; reads come from the
  watch-fed cache, so the wake-up costs no Nomad call.

A key a resync or a reconnect's LIST hands over (``job_listed``) takes the Job routes at low
priority: level-triggered, it is a job change, but it is a summary of the whole cluster, not
news, so every queue serves the keys of real events first (``WorkQueue``'s two lanes).

The table is data (``default_routes``) so a test can read it, and the router checks at build
time that every route names a queue it was given: a typo fails the process at start, not the
first event. The router satisfies the source's ``EventHandler`` protocol by shape, so neither
module imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from crds_equivalent.jobkey import JobKey


class EventKind(StrEnum):
    """The kinds of change the source reports (Nomad's event topics, as far as we care)."""

    JOB = "Job"
    ALLOCATION = "Allocation"
    DEPLOYMENT = "Deployment"


@dataclass(frozen=True, slots=True)
class Route:
    """Add the key to ``queue`` after ``delay`` seconds (0: at once)."""

    queue: str
    delay: float = 0.0


RouteTable = Mapping[EventKind, Sequence[Route]]


def default_routes(*, health_delay: float, certs_delay: float, alloc_debounce: float) -> RouteTable:
    """The controller's table; the delays come from ``Tuning`` (tests shorten them)."""
    return {
        EventKind.JOB: (
            Route("mesh"),
            Route("health", health_delay),
            Route("certs", certs_delay),
        ),
        EventKind.ALLOCATION: (
            Route("mesh", alloc_debounce),
            Route("health", alloc_debounce),
        ),
        EventKind.DEPLOYMENT: (Route("mesh", alloc_debounce),),
    }


class Enqueuer(Protocol):
    """The part of a ``WorkQueue`` routing needs."""

    def add(self, item: JobKey, *, low_priority: bool = False) -> None: ...

    def add_after(self, item: JobKey, delay: float, *, low_priority: bool = False) -> None: ...


class EventRouter:
    """Fans one key out to the queues its event kind is routed to."""

    def __init__(self, queues: Mapping[str, Enqueuer], routes: RouteTable) -> None:
        unknown = sorted({r.queue for rs in routes.values() for r in rs if r.queue not in queues})
        if unknown:
            raise ValueError(f"routes name unknown queues: {', '.join(unknown)}")
        self._queues = dict(queues)
        self._routes = {kind: tuple(routes.get(kind, ())) for kind in EventKind}

    def route(self, kind: EventKind, key: JobKey, *, low_priority: bool = False) -> None:
        for r in self._routes[kind]:
            queue = self._queues[r.queue]
            if r.delay > 0:
                queue.add_after(key, r.delay, low_priority=low_priority)
            else:
                queue.add(key, low_priority=low_priority)

    def job_changed(self, key: JobKey) -> None:
        self.route(EventKind.JOB, key)

    def job_listed(self, key: JobKey) -> None:
        self.route(EventKind.JOB, key, low_priority=True)

    def allocation_changed(self, key: JobKey) -> None:
        self.route(EventKind.ALLOCATION, key)

    def deployment_changed(self, key: JobKey) -> None:
        self.route(EventKind.DEPLOYMENT, key)
