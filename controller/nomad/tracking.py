"""The event source's memory: which jobs are tracked, whose child is whose, what was inspected.

Pure bookkeeping over Nomad's wire shapes, no I/O: the source (``source``) does the LISTs,
reads and streaming, and asks this what a LIST stub or an event means. Kept apart so the
connection handling (LIST -> subscribe -> read, reconnects, resyncs) reads on its own, and
so the three pieces of state it keeps have one owner:

- ``tracked``: the jobs the predicate found interesting, as of the last LIST and the events
  since; Allocation events count only for these.
- ``parents``: child -> parent, from ``ParentID`` (below).
- ``inspected``: the predicate's verdict on an unflagged job per JobModifyIndex, so a
  steady-state resync reads nothing extra; Job events refresh it.

While a LIST is in flight, Job events are also noted (``since_list``): they are newer than
the LIST and win over what it and the reads said.

Children are owned by their parent (controller-runtime's ``EnqueueRequestForOwner``): a job
with ``ParentID`` (a periodic launch or a dispatch; ``nomad/periodic.go`` ``deriveJob``,
``nomad/job_endpoint.go`` ``Job.Dispatch``) is never handed over under its own key, never read
to be inspected, and its Job and Allocation events are handed over as an *allocation* change of
its parent, since for the parent what changed is its running instances, not its spec. The
parent of each child is learned from the child's ``ParentID`` (LIST stubs and Job events
carry it; Allocation events carry only the child's ID, whose Job event comes first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from controller.nomad.stream import Event
from crds_equivalent.jobkey import JobKey

if TYPE_CHECKING:
    from controller.nomad.source import EventHandler, JobPredicate


class TrackedJobs:
    """What the source knows about the watched jobs between LISTs."""

    def __init__(
        self, predicate: JobPredicate, handler: EventHandler, *, inspect_unflagged: bool
    ) -> None:
        self.predicate = predicate
        self.handler = handler
        self.inspect_unflagged = inspect_unflagged
        self.tracked: set[JobKey] = set()
        self.inspected: dict[JobKey, tuple[int, bool]] = {}
        self.parents: dict[JobKey, JobKey] = {}
        self.since_list: tuple[dict[JobKey, bool], bool] = ({}, False)

    # --- a LIST -----------------------------------------------------------------------------

    def begin_listing(self) -> None:
        self.since_list = ({}, True)

    def end_listing(self) -> None:
        self.since_list = ({}, False)

    def sort_listing(
        self, stubs: Iterable[Mapping[str, Any]]
    ) -> tuple[set[JobKey], list[tuple[JobKey, int]]]:
        """The keys a LIST shows to be interesting, and the (key, JobModifyIndex) of the
        unflagged jobs to read before they can be judged. Learns every child's parent and
        forgets the inspections of jobs no longer listed."""
        found: set[JobKey] = set()
        to_read: list[tuple[JobKey, int]] = []
        listed: set[JobKey] = set()
        parents: dict[JobKey, JobKey] = {}
        for stub in stubs:
            key = JobKey.of(str(stub.get("Namespace") or "default"), str(stub["ID"]))
            parent = parent_of(key, stub)
            if parent is not None:
                parents[key] = parent  # the parent's own stub speaks for it
                continue
            listed.add(key)
            modify_index = int(stub.get("JobModifyIndex") or 0)
            cached = self.inspected.get(key)
            if self.predicate.stub_flagged(stub):
                found.add(key)
            elif cached is not None and cached[0] == modify_index:
                if cached[1]:
                    found.add(key)
            elif self.inspect_unflagged:
                to_read.append((key, modify_index))
            elif self.predicate.stub_maybe_interesting(stub) or key in self.tracked:
                found.add(key)
        self.inspected = {k: v for k, v in self.inspected.items() if k in listed}
        self.parents = parents
        return found, to_read

    def judge_read(self, key: JobKey, modify_index: int, job: Mapping[str, Any] | None) -> bool:
        """The predicate's verdict on one read job, cached for its JobModifyIndex."""
        interesting = job is not None and self.predicate.job_interesting(job)
        self.inspected[key] = (modify_index, interesting)
        return interesting

    def remember(self, key: JobKey, modify_index: int, interesting: bool) -> bool:
        """A verdict the job cache already holds for this JobModifyIndex (no read needed)."""
        self.inspected[key] = (modify_index, interesting)
        return interesting

    def settle(self, found: set[JobKey]) -> set[JobKey]:
        """Track what the LIST found, corrected by the events that arrived while it ran."""
        changed, _ = self.since_list
        for key, interesting in changed.items():
            if interesting:
                found.add(key)
            else:
                found.discard(key)
        self.tracked = found
        return found

    # --- events -----------------------------------------------------------------------------

    def allocation_event(self, event: Event) -> None:
        alloc = event.payload.get("Allocation") or {}
        job_id = alloc.get("JobID") or (event.filter_keys[0] if event.filter_keys else "")
        key = JobKey.of(event.namespace, str(job_id))
        key = self.parents.get(key, key)
        if key in self.tracked:
            self.handler.allocation_changed(key)

    def job_event(self, event: Event) -> None:
        job = event.payload.get("Job") or {}
        key = JobKey.of(event.namespace or str(job.get("Namespace") or "default"), event.key)
        parent = parent_of(key, job)
        if parent is not None:
            self._child_event(event, key, parent)
            return
        interesting = self.predicate.job_interesting(job)
        changed, listing = self.since_list
        if listing:
            changed[key] = interesting
        if interesting:
            self.tracked.add(key)
            self.handler.job_changed(key)
        elif key in self.tracked:
            # Was interesting, is not any more (e.g. flag gone, or purged): one last look.
            self.tracked.discard(key)
            self.handler.job_changed(key)
        if event.payload.get("Deleted") or event.type == "JobBatchDeregistered":
            self.tracked.discard(key)
            self.inspected.pop(key, None)
        else:
            self.inspected[key] = (int(job.get("JobModifyIndex") or 0), interesting)

    def _child_event(self, event: Event, key: JobKey, parent: JobKey) -> None:
        """A child was launched, changed state or was purged: its parent's instances changed."""
        if event.payload.get("Deleted") or event.type in (
            "JobDeregistered",
            "JobBatchDeregistered",
        ):
            self.parents.pop(key, None)
        else:
            self.parents[key] = parent
        if parent in self.tracked:
            self.handler.allocation_changed(parent)


def parent_of(key: JobKey, doc: Mapping[str, Any]) -> JobKey | None:
    """The parent's key of a periodic or dispatched child (stub or job), else None.

    ``ParentID`` is set only by the Nomad leader when it derives a child, and a child lives in
    its parent's namespace (``deriveJob`` and ``Job.Dispatch`` copy the parent).
    """
    parent = doc.get("ParentID")
    if isinstance(parent, str) and parent:
        return JobKey.of(key.namespace, parent)
    return None
