"""The watch-fed cache of jobs, allocations and deployments (controller-runtime's informer).

Pure bookkeeping over Nomad's wire shapes, no I/O: the source (``source``) does the LISTs,
GETs and streaming and hands this what it got; the store (``cached_jobs``) answers the
reconcilers' reads from it and sends every write to Nomad. What it keeps:

- jobs keyed by (namespace, id): the *raw* job, every field as Nomad sent it, for jobs the
  predicate keeps (``keep``), held once, as deflated compact JSON (``Packer``: a small
  fraction of the parsed dict), and parsed afresh for each read, so no reader can change the
  cache. The ``RECENT_JOBS`` jobs written or read last also keep their compact text undeflated
  (``recent``): a reconcile reads its job two or three times right after the event that queued
  it, and a job written lately waits there to be deflated when it cools, so a job written twice
  in a row (a register, then its status) is deflated once. The text, not a pickle: orjson
  parses it faster than pickle loads the same job, and a pickle cost a ``dumps`` on every
  write and every missed read (7,000 at a 1k cold start, for 12 hits), which the text, made
  anyway to be deflated or got by inflating, does not. That bound (about 300 kB) is all the
  cache ever holds of a job beyond its one packed copy. For any other job
  only its verdict per ``JobModifyIndex``
  (the inspection memory the source's per-job reads need); for children of periodic and
  parameterized parents their parent and status (the LIST stub says all ``child_allocations``
  needs, so a child is never read);
- allocations of kept jobs and of their children, and deployments of kept jobs, trimmed to
  the fields the controller reads and packed, one list per job (``cache_objects``).

Ordering, so a stale cache can cost a retry but never a clobber (every write is fenced with
EnforceIndex or CAS anyway): an object is replaced only by one at least as new, compared by
its own ``ModifyIndex`` (jobs, allocations and deployments all bump it on every change,
``nomad/state/state_store.go``); a Job event with ``Deleted`` leaves a tombstone at the
event's raft index that an older LIST stub or GET cannot undo. A fill (LIST, GETs, the
allocation and deployment LISTs) therefore races the stream safely: events newer than the
LIST win, and at the end of a fill only objects absent from it *and* no newer than its index
are dropped (Nomad purges allocations and deployments without an event, ``eventFromChange``
has no case for their deletion, so a refill is what forgets them).

Read-your-writes lives here as data (``expect``): after a register answered JobModifyIndex N,
the cached job is behind until the Job event of N arrives; the store waits for it, bounded.
``invalidate`` (after a Conflict) makes the next read a GET.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from controller.nomad.cache_objects import (
    DEPLOYMENTS_KEPT,
    GONE,
    UNCHANGED,
    Gone,
    JobEntry,
    ObjectTable,
    Packer,
    Unchanged,
    compact,
    finished,
    intval,
    key_of,
    owner,
    purged,
    trim_allocation,
    trim_deployment,
)
from controller.nomad.stream import Event
from controller.runtime import jsonwire
from controller.runtime.recent import Recent
from crds_equivalent.jobkey import JobKey

Keep = Callable[[Mapping[str, Any]], bool]

RECENT_JOBS = 32  # jobs held undeflated as well: the ones the workers are on, with room


class JobCache:
    """Jobs, allocations and deployments, kept current from LIST/GET fills and events."""

    def __init__(self, keep: Keep, *, sample: bytes = b"") -> None:
        """``keep`` says which jobs are cached whole; ``sample`` (compact JSON of a job as
        the controller injects it) seeds the jobs' preset dictionary (see ``Packer``)."""
        self.keep = keep
        self.packer = Packer(seed=sample)
        self.jobs: dict[JobKey, JobEntry] = {}
        # (entry, its compact JSON undeflated): the entry is checked on use, so a job outlived
        # by its entry is never served
        self.recent: Recent[JobKey, tuple[JobEntry, bytes]] = Recent(RECENT_JOBS, self._cool)
        self.children: dict[JobKey, set[JobKey]] = {}
        self.tombstones: dict[JobKey, int] = {}
        self.expected: dict[JobKey, int] = {}
        self.allocations = ObjectTable(job_of=owner)
        self.deployments = ObjectTable(job_of=owner)
        self.ready = False  # one whole fill (jobs, allocations, deployments) has been applied
        self.on_job: Callable[[JobKey], None] = lambda key: None

    # --- reads ------------------------------------------------------------------------------

    def job(self, key: JobKey) -> dict[str, Any] | Gone | None:
        """The kept raw job (a fresh dict per call: a reader cannot change the cache); GONE
        when deleted; None when a read must answer (not kept, stale, behind our own write, or
        unknown)."""
        if key in self.tombstones and key not in self.jobs:
            return GONE
        entry = self.jobs.get(key)
        if entry is None or entry.job is None or entry.stale:
            return None
        if entry.modify_index < self.expected.get(key, 0):
            return None
        held = self.recent.get(key)
        if held is not None and held[0] is entry:
            text = held[1]
        else:
            text = self.packer.inflate(entry.job) if entry.packed else entry.job
            self.recent.put(key, (entry, text))
        job: dict[str, Any] = jsonwire.loads(text)
        return job

    def allocations_of(self, key: JobKey) -> list[dict[str, Any]]:
        return self.allocations.of(key)

    def child_allocations(self, parent: JobKey) -> list[dict[str, Any]]:
        """The allocations of the parent's children that are not dead."""
        out: list[dict[str, Any]] = []
        for child in sorted(self.children.get(parent, ())):
            entry = self.jobs.get(child)
            if entry is not None and entry.live:
                out.extend(self.allocations.of(child))
        return out

    def deployments_of(self, key: JobKey) -> list[dict[str, Any]]:
        """Newest first (by CreateIndex), as ``/v1/job/:id/deployments`` is read."""
        found = self.deployments.of(key)
        return sorted(found, key=lambda d: intval(d.get("CreateIndex")), reverse=True)

    def verdict(self, key: JobKey, modify_index: int) -> bool | None:
        """The predicate's verdict on the job at ``modify_index``, if the cache has one."""
        entry = self.jobs.get(key)
        if entry is None or entry.parent or entry.modify_index != modify_index:
            return None
        return entry.verdict

    def index_of(self, key: JobKey) -> int:
        """The ModifyIndex the job is known at (0: unknown): pass it to ``apply_read`` as
        ``at`` when the read is answered, so a 404 forgets nothing learnt meanwhile."""
        entry = self.jobs.get(key)
        return entry.index if entry is not None else 0

    def kept(self, key: JobKey) -> bool:
        entry = self.jobs.get(key)
        return entry is not None and entry.job is not None

    def kept_keys(self) -> list[JobKey]:
        return sorted(k for k, e in self.jobs.items() if e.job is not None)

    # --- fills ------------------------------------------------------------------------------

    def apply_listing(self, stubs: Iterable[Mapping[str, Any]]) -> list[JobKey]:
        """A job LIST's stubs: learn children and JobModifyIndexes; return the keys owed a GET
        (not cached at the stub's JobModifyIndex). Absent jobs are dropped by ``end_listing``."""
        owed: list[JobKey] = []
        for stub in stubs:
            key = key_of(stub)
            index, modify_index = (
                intval(stub.get("ModifyIndex")),
                intval(stub.get("JobModifyIndex")),
            )
            if self._buried(key, index):
                continue
            entry = self.jobs.get(key)
            parent = stub.get("ParentID")
            if isinstance(parent, str) and parent:
                if entry is None or index >= entry.index:
                    self._put_child(key, parent, index, modify_index, stub.get("Status"))
                continue
            if entry is None or (entry.modify_index != modify_index and index > entry.index):
                owed.append(key)
        return owed

    def apply_read(self, key: JobKey, job: Mapping[str, Any] | None, *, at: int = 0) -> bool:
        """A GET's answer (None: 404 at raft index ``at``). Kept only if no newer object was
        cached meanwhile. Returns the predicate's verdict on what is cached now."""
        if job is None:
            entry = self.jobs.get(key)
            if entry is None or entry.index <= at:
                self._drop_job(key, at)  # a tombstone: the next read needs no GET
            return False
        self._put_job(key, job if isinstance(job, dict) else dict(job))
        entry = self.jobs.get(key)
        if entry is not None and intval(job.get("JobModifyIndex")) >= entry.modify_index:
            self._settle(key, entry)
        return bool(entry is not None and entry.verdict)

    def end_listing(self, listed: Iterable[JobKey], index: int) -> None:
        """Forget jobs absent from a LIST taken at ``index`` unless an event since said more."""
        seen = set(listed)
        for key in [k for k, e in self.jobs.items() if k not in seen and e.index <= index]:
            self._drop_job(key, index)
        self.tombstones = {k: i for k, i in self.tombstones.items() if i > index}

    def listed_allocation(self, stub: dict[str, Any]) -> dict[str, Any] | None:
        """What the cache keeps of one LIST stub (None: nothing), as its page arrives."""
        if not self._wanted_alloc(stub) or finished(stub):
            return None
        return trim_allocation(stub)

    def listed_deployment(self, deployment: dict[str, Any]) -> dict[str, Any] | None:
        """What the cache keeps of one deployment of the LIST (None: nothing)."""
        return trim_deployment(deployment) if self.kept(owner(deployment)) else None

    def stage_allocation(self, stub: dict[str, Any]) -> None:
        """One LIST stub, as its page arrives: what ``listed_allocation`` keeps of it, held
        compact until ``replace_staged_allocations`` (a ``keep`` that keeps nothing in the
        listing itself)."""
        kept = self.listed_allocation(stub)
        if kept is not None:
            self.allocations.stage(kept)

    def stage_deployment(self, deployment: dict[str, Any]) -> None:
        """As ``stage_allocation``, for one deployment of the LIST."""
        kept = self.listed_deployment(deployment)
        if kept is not None:
            self.deployments.stage(kept)

    def unstage(self) -> None:
        """Forget what a LIST that did not complete staged."""
        self.allocations.unstage()
        self.deployments.unstage()

    def replace_staged_allocations(self, index: int) -> None:
        """``replace_allocations`` with the stubs staged by the LIST taken at ``index``."""
        self.allocations.replace_staged(index)

    def replace_staged_deployments(self, index: int) -> None:
        """``replace_deployments`` with the deployments staged by the LIST at ``index``."""
        self.deployments.replace_staged(index)
        self._deployments_replaced()

    def replace_allocations(self, stubs: Iterable[dict[str, Any]], index: int) -> None:
        """The whole allocation LIST (``/v1/allocations``, stubs with TaskStates) at ``index``
        in one call: staged and replaced as the fill does page by page."""
        for stub in stubs:
            self.stage_allocation(stub)
        self.replace_staged_allocations(index)

    def replace_deployments(self, deployments: Iterable[dict[str, Any]], index: int) -> None:
        """As ``replace_allocations``, for the whole deployment LIST."""
        for deployment in deployments:
            self.stage_deployment(deployment)
        self.replace_staged_deployments(index)

    def _deployments_replaced(self) -> None:
        """The last step of a fill: deployments capped per job, the cache ready."""
        for key in self.deployments.jobs():
            self.deployments.cap(key, DEPLOYMENTS_KEPT)
        self.ready = True

    # --- events -----------------------------------------------------------------------------

    def apply_event(self, event: Event) -> JobKey | Unchanged | None:
        """One event of the stream; returns the key of the kept job it changed, if any (a
        child's key for its own Job and Allocation events: the source maps it to the parent).

        Once the cache is filled (``ready``: every read of a kept job is answered from it),
        an event that moves nothing a reader sees returns ``UNCHANGED`` instead, so nothing
        is reconciled for it (controller-runtime's predicates): an allocation or deployment
        whose kept fields are as cached (Nomad bumps ``ModifyIndex`` for every change, e.g. an
        allocation's health, which the trimmed object does not hold). A Job event is always
        news, even at the cached ``JobModifyIndex``: the one that marks a version stable is
        how the mesh reconciler hears that the rollout it waits on succeeded."""
        if event.topic == "Job":
            return self._job_event(event)
        if event.topic == "Allocation":
            alloc = event.payload.get("Allocation")
            if not isinstance(alloc, Mapping) or not self._wanted_alloc(alloc):
                return None
            if finished(alloc):
                news = self.allocations.remove(
                    owner(alloc), str(alloc.get("ID") or ""), upto=intval(alloc.get("ModifyIndex"))
                )
            else:
                news = self.allocations.put(trim_allocation(alloc))
            return owner(alloc) if news or not self.ready else UNCHANGED
        if event.topic == "Deployment":
            deployment = event.payload.get("Deployment")
            if isinstance(deployment, Mapping):
                key = self.deployments.job_of(deployment)
                if self.kept(key):
                    news = self.deployments.put(trim_deployment(deployment))
                    self.deployments.cap(key, DEPLOYMENTS_KEPT)
                    return key if news or not self.ready else UNCHANGED
        return None

    def _job_event(self, event: Event) -> JobKey | None:
        job = event.payload.get("Job")
        if not isinstance(job, dict):
            return None
        key = key_of(job, event.namespace)
        if purged(event, job):
            self._drop_job(key, event.index)
            self.on_job(key)
            return key
        parent = job.get("ParentID")
        if isinstance(parent, str) and parent:
            self._put_child(
                key, parent, intval(job.get("ModifyIndex")), intval(job.get("JobModifyIndex")),
                job.get("Status"),
            )  # fmt: skip
            return key
        self._put_job(key, job)
        entry = self.jobs.get(key)
        if entry is not None and entry.index == intval(job.get("ModifyIndex")):
            self._settle(key, entry)
        self.on_job(key)
        return key

    # --- read-your-writes -------------------------------------------------------------------

    def expect(self, key: JobKey, modify_index: int) -> None:
        """Our register answered ``modify_index``: reads wait for the job at least that new."""
        entry = self.jobs.get(key)
        if entry is None or entry.modify_index < modify_index:
            self.expected[key] = max(modify_index, self.expected.get(key, 0))

    def invalidate(self, key: JobKey) -> None:
        """A fenced write lost: the cached job is behind, the next read asks Nomad."""
        entry = self.jobs.get(key)
        if entry is not None:
            entry.stale = True

    # --- internals --------------------------------------------------------------------------

    def _settle(self, key: JobKey, entry: JobEntry) -> None:
        """The entry now holds what Nomad stores: no longer stale, and our write is seen."""
        entry.stale = False
        if self.expected.get(key, 0) <= entry.modify_index:
            self.expected.pop(key, None)

    def _put_job(self, key: JobKey, job: dict[str, Any]) -> None:
        """Cache ``job`` unless what is cached is as new."""
        index = intval(job.get("ModifyIndex"))
        entry = self.jobs.get(key)
        if (entry is not None and entry.index > index) or self._buried(key, index):
            return
        if entry is not None and entry.index == index and entry.verdict is not None:
            # Nomad bumps a job's ModifyIndex on every change: this is the object cached
            # (a GET answering what an event already brought, or the other way round)
            return
        keep = self.keep(job)
        if entry is not None and entry.job is not None and not keep:
            self._forget_objects(key)
        text = compact(job) if keep else None
        entry = JobEntry(
            index=index,
            modify_index=intval(job.get("JobModifyIndex")),
            job=text,
            verdict=keep,
            live=job.get("Status") != "dead",
        )
        self.jobs[key] = entry
        if text is not None:
            self.recent.put(key, (entry, text))  # deflated when it cools
        else:
            self.recent.pop(key)

    def _cool(self, key: JobKey, held: tuple[JobEntry, bytes]) -> None:
        """A job leaves the recent ones: deflate it if it was written while there."""
        entry = held[0]
        if not entry.packed and entry.job is not None and self.jobs.get(key) is entry:
            entry.job = self.packer.deflate(entry.job)
            entry.packed = True

    def flush(self) -> None:
        """Deflate and pack everything held unpacked (what the cache holds at rest)."""
        self.recent.flush()
        self.allocations.flush()
        self.deployments.flush()

    def _put_child(
        self, key: JobKey, parent: str, index: int, modify_index: int, status: Any
    ) -> None:
        entry = self.jobs.get(key)
        if (entry is not None and entry.index > index) or self._buried(key, index):
            return
        self.jobs[key] = JobEntry(
            index=index, modify_index=modify_index, parent=parent, live=status != "dead"
        )
        self.recent.pop(key)
        self.children.setdefault(JobKey.of(key.namespace, parent), set()).add(key)

    def _buried(self, key: JobKey, index: int) -> bool:
        """Deleted at a raft index no older than ``index``: this version is dead."""
        return self.tombstones.get(key, -1) >= index

    def _drop_job(self, key: JobKey, index: int) -> None:
        entry = self.jobs.pop(key, None)
        self.recent.pop(key)
        self.tombstones[key] = max(index, self.tombstones.get(key, 0))
        self.expected.pop(key, None)
        self._forget_objects(key)
        if entry is not None and entry.parent:
            parent = JobKey.of(key.namespace, entry.parent)
            siblings = self.children.get(parent)
            if siblings is not None:
                siblings.discard(key)
                if not siblings:
                    del self.children[parent]

    def _forget_objects(self, key: JobKey) -> None:
        self.allocations.drop_job(key)
        self.deployments.drop_job(key)

    def _wanted_alloc(self, alloc: Mapping[str, Any]) -> bool:
        """Allocations of kept jobs and of the children of kept parents."""
        key = self.allocations.job_of(alloc)
        entry = self.jobs.get(key)
        if entry is None:
            return False
        if entry.parent:
            return self.kept(JobKey.of(key.namespace, entry.parent))
        return entry.job is not None
