"""The ``ControllerView`` of a running controller: the /status document and the probe facts.

It used to be methods of the composition root, which meant /status reached into the mesh
reconciler, the event source, the elector and the lock through ``App``'s attributes. Here it
reads each part through a small protocol of exactly what it shows, so it can be unit-tested
with plain fakes and the parts it reads cannot grow into a second control path: nothing here
writes. The HTTP layer may not import the Nomad adapter, so the lock's read errors that /status
reports (instead of failing) are handed in as ``lock_errors``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from controller.http.probes import LeaderFacts
from controller.runtime.clock import Clock, wait_for
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import Phase
from crds_equivalent.status_report import RotationSummary

RotationRead = Callable[[], Awaitable[RotationSummary | None]]
"""Reads ``mesh-controller/rotation`` and summarizes it (None: no rotation ever recorded)."""


class PhaseBook(Protocol):
    """What the mesh reconciler remembers: each job's last phase, and its writes by kind."""

    @property
    def phases(self) -> Mapping[JobKey, Phase]: ...

    @property
    def writes(self) -> Mapping[str, int]: ...


class SourceProgress(Protocol):
    """How far the event source got."""

    @property
    def last_index(self) -> int: ...

    @property
    def last_line_time(self) -> float | None: ...

    @property
    def lists(self) -> int: ...

    def is_synced(self) -> bool: ...


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_since(self) -> datetime | None: ...


class LeaderLock(Protocol):
    @property
    def identity(self) -> str: ...

    @property
    def version(self) -> str: ...

    async def holder(self) -> Mapping[str, str] | None: ...


class StatusBacklog(Protocol):
    """Status records accepted but held back (coalesced, or waiting for a rollout's end)."""

    @property
    def pending(self) -> int: ...


class QueueDepth(Protocol):
    def __len__(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    @property
    def in_flight(self) -> frozenset[JobKey]: ...


class StatusView:
    """Answers /status, /healthz and /readyz from the parts of one controller process."""

    def __init__(
        self,
        *,
        book: PhaseBook,
        source: SourceProgress,
        leadership: Leadership,
        lock: LeaderLock,
        queue: QueueDepth,
        clock: Clock,
        holder_timeout: float,
        lock_errors: tuple[type[Exception], ...],
        rotation: RotationRead | None = None,
        status_backlog: StatusBacklog | None = None,
    ) -> None:
        self.book = book
        self.status_backlog = status_backlog
        self.source = source
        self.leadership = leadership
        self.lock = lock
        self.queue = queue
        self.clock = clock
        self.holder_timeout = holder_timeout
        self.lock_errors = lock_errors
        self.read_rotation = rotation

    def phase_counts(self) -> dict[str, int]:
        return dict(Counter(str(p) for p in self.book.phases.values()))

    def facts(self) -> LeaderFacts:
        since = self.leadership.leader_since
        last_line = self.source.last_line_time
        leading = self.leadership.is_leader
        return LeaderFacts(
            leading=leading,
            synced=self.source.is_synced(),
            leading_for=(self.clock.now() - since).total_seconds() if since else None,
            last_line_age=(
                self.clock.monotonic() - last_line if leading and last_line is not None else None
            ),
        )

    async def leader(self) -> dict[str, Any]:
        """Who leads: ourselves from memory, anyone else from the lock (bounded, never raises)."""
        if self.leadership.is_leader:
            since = self.leadership.leader_since
            return {"identity": self.lock.identity, "since": since.isoformat() if since else ""}
        expected: tuple[type[Exception], ...] = (*self.lock_errors, TimeoutError)
        try:
            holder = await wait_for(self.clock, self.lock.holder(), self.holder_timeout)
        except expected as exc:
            return {"error": f"cannot read the leader lock: {exc}"}
        if not holder:
            return {}
        return {"identity": holder.get("identity", ""), "since": holder.get("since", "")}

    async def rotation(self) -> dict[str, Any] | None:
        """The CA rotation as the Variable says now (bounded, never raises): a rotation is
        driven by whichever process holds it, not necessarily this one, so it is read, not
        remembered. None: no rotation ever recorded."""
        if self.read_rotation is None:
            return None
        expected: tuple[type[Exception], ...] = (*self.lock_errors, TimeoutError)
        try:
            found = await wait_for(self.clock, self.read_rotation(), self.holder_timeout)
        except expected as exc:
            return {"error": f"cannot read the rotation record: {exc}"}
        return found.model_dump(mode="json") if found is not None else None

    async def status(self) -> dict[str, Any]:
        """/status: who leads, how far the stream got, the queue, each job's phase, the CA
        rotation. No secrets."""
        facts = self.facts()
        jobs = [
            {"namespace": ns, "job": job, "phase": str(phase)}
            for (ns, job), phase in sorted(self.book.phases.items())
        ]
        return {
            "identity": self.lock.identity,
            "version": self.lock.version,
            "leading": facts.leading,
            "leader": await self.leader(),
            "ready": facts.synced or not facts.leading,
            "synced": facts.synced,
            "event_stream": {
                "last_index": self.source.last_index,
                "last_line_age_s": (
                    round(facts.last_line_age, 3) if facts.last_line_age is not None else None
                ),
                "lists": self.source.lists,
            },
            "queue": {
                "depth": len(self.queue),
                "waiting": self.queue.waiting,
                "in_flight": len(self.queue.in_flight),
            },
            "phases": self.phase_counts(),
            "jobs": jobs,
            "writes": dict(self.book.writes),
            "status_records": {
                "pending": self.status_backlog.pending if self.status_backlog else 0,
            },
            "rotation": await self.rotation(),
        }
