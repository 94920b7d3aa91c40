"""The event source: LIST, then stream from the LIST's index, LIST again on every reconnect.

Nomad's stream silently starts at the oldest buffered index when asked for one it no longer has,
so a reconnect can have a gap nobody reports. The only safe recovery is level-triggered: LIST
(whose ``X-Nomad-Index`` becomes the resume point), subscribe at that index, and only then read
the unflagged jobs one by one and hand every interesting job to the handler, dropping replayed
frames. Subscribing before the per-job reads matters on a busy cluster: Nomad keeps only
``event_buffer_size`` (default 100) event-producing indexes (nomad/stream/event_buffer.go
``StartAtClosest`` falls back to the oldest one it still has), so reads that outlast the buffer
would lose every change made while they ran. Events that arrive during the reads are handled as
they come and win over what the LIST and the reads said. A jittered periodic resync covers
anything else.

This module is the *source* of controller-runtime's source → predicate → handler split, and
only that: which jobs are interesting (``JobPredicate``) and what an event of one means for
the work queues (``EventHandler``) are given to it by the composition root. So the Nomad
adapter knows Nomad's wire shapes and nothing of meshes or of how many queues there are.

Which keys are handed over: LIST stubs carry only *job* meta, so the predicate judges a stub
by it (``stub_flagged``). Jobs found interesting only from their whole spec are found (1) from
Job events, which carry the whole job, (2) through ``known_keys`` (the status records: every
job we ever reconciled), and (3) with ``inspect_unflagged`` (default), by reading each
unflagged job once per JobModifyIndex — the verdict is cached, and Job events refresh it, so
steady-state resyncs read nothing extra. Without inspection, any stub the predicate calls
``stub_maybe_interesting`` is handed over as a wide net instead. Allocation events are mapped
to their job only when that job is known to be interesting.

Children are owned by their parent (controller-runtime's ``EnqueueRequestForOwner``); what the
source remembers between LISTs (tracked jobs, child -> parent, inspections) is in ``tracking``.

With a ``cache`` (``cache.JobCache``, what the reconcilers read), the source is also the
informer that keeps it: the per-job reads cover every job the cache does not hold at its
LIST ``JobModifyIndex`` (flagged ones too) and each job is read once, serving both the
predicate and the cache; after the reads of a (re)connect, one paged LIST of allocations and
one of deployments complete the fill (not on the periodic resync: the running stream keeps
them); every event is applied to the cache before the handler hears of it, so a reconcile it
triggers reads the event's object; and a Deployment event of a tracked job is handed over as
``deployment_changed``. An event the cache finds to move nothing a reconcile reads (an
allocation's health: ``JobCache.apply_event``) is handed over as nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry

from controller.nomad.cache import JobCache
from controller.nomad.cache_objects import Unchanged
from controller.nomad.errors import NomadError, PermissionDenied
from controller.nomad.jobs import JobList, NomadJobs
from controller.nomad.metrics import StreamMetrics, stream_metrics
from controller.nomad.stream import EventBatch, EventStream
from controller.nomad.tracking import TrackedJobs
from controller.runtime.clock import Clock, SystemClock
from crds_equivalent.jobkey import JobKey

log = structlog.get_logger(__name__)


KnownKeys = Callable[[], Awaitable[Iterable[JobKey]]]


class JobPredicate(Protocol):
    """Which jobs the source reports (controller-runtime's predicate), over raw Nomad shapes."""

    def stub_flagged(self, stub: Mapping[str, Any]) -> bool:
        """A LIST stub (job meta only) that is interesting without reading the job."""
        ...

    def stub_maybe_interesting(self, stub: Mapping[str, Any]) -> bool:
        """A LIST stub worth a look when unflagged jobs are not read one by one."""
        ...

    def job_interesting(self, job: Mapping[str, Any]) -> bool:
        """A whole job (from an event or a read) that must be reconciled."""
        ...


class EventHandler(Protocol):
    """What an interesting job's change means for the queues (controller-runtime's handler).

    Keys found by a LIST or a resync count as job changes: level-triggered, a LIST is a
    summary of every change the stream may have lost. The first LIST of a run (a new
    leader: nothing reconciled yet) hands its keys over as ``job_changed``, in one FIFO with
    the events, as the first look at every job is due; every later one (the periodic resync, a
    reconnect) as ``job_listed``, because it hands over every watched job at once and the
    handler may serve them after the keys of real events, which must not wait behind a whole
    cluster of jobs already handled.
    """

    def job_changed(self, key: JobKey) -> None: ...

    def job_listed(self, key: JobKey) -> None: ...

    def allocation_changed(self, key: JobKey) -> None: ...

    def deployment_changed(self, key: JobKey) -> None: ...


class NomadEventSource:
    """Feeds ``handler`` the keys of jobs ``predicate`` finds interesting. Leader-only task."""

    def __init__(
        self,
        jobs: NomadJobs,
        stream: EventStream,
        handler: EventHandler,
        *,
        predicate: JobPredicate,
        namespaces: Sequence[str] = ("*",),
        known_keys: KnownKeys | None = None,
        inspect_unflagged: bool = True,
        inspect_concurrency: int = 8,
        resync_interval: float = 600.0,
        resync_jitter: float = 0.1,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        subscribe_grace: float = 1.0,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        cache: JobCache | None = None,
    ) -> None:
        self.jobs = jobs
        self.stream = stream
        self.handler = handler
        self.predicate = predicate
        self.namespaces = tuple(namespaces)
        self.known_keys = known_keys
        self.inspect_unflagged = inspect_unflagged
        self._inspect_limit = asyncio.Semaphore(inspect_concurrency)
        self._inspect_width = inspect_concurrency
        self.resync_interval = resync_interval
        self.resync_jitter = resync_jitter
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        # How long the per-job reads wait for the stream's 200 before they start anyway: Nomad
        # subscribes first and answers with its first frame, so on a quiet cluster the 200 can
        # take until the first heartbeat, and by then the request has long reached the server.
        self.subscribe_grace = subscribe_grace
        self.clock: Clock = clock or SystemClock()
        self.metrics: StreamMetrics = stream_metrics(registry or CollectorRegistry())
        # heartbeats never reach the source as batches, so the gauge reads the stream's clock
        self.metrics.last_frame.set_function(self._last_frame_unix)
        self.rng = rng or random.Random()
        self.memory = TrackedJobs(predicate, handler, inspect_unflagged=inspect_unflagged)
        self.cache = cache
        self.synced = asyncio.Event()
        self._listing = asyncio.Lock()
        self.lists = 0
        # The first hand-over of a run (a new leader) is news in full: nothing was reconciled
        # yet. Later ones (resyncs, reconnects) are summaries of jobs already handled.
        self._first_hand_over = True

    @property
    def tracked(self) -> set[JobKey]:
        """Interesting as of the last LIST and the events since."""
        return self.memory.tracked

    @tracked.setter
    def tracked(self, keys: set[JobKey]) -> None:
        self.memory.tracked = keys

    @property
    def parents(self) -> dict[JobKey, JobKey]:
        """child -> parent, from ParentID."""
        return self.memory.parents

    @property
    def last_index(self) -> int:
        return self.stream.last_index

    @property
    def last_line_time(self) -> float | None:
        return self.stream.last_line_time

    def _last_frame_unix(self) -> float:
        seen = self.stream.last_line_at
        return seen.timestamp() if seen is not None else 0.0

    def is_synced(self) -> bool:
        """The first LIST has been handed over: every interesting job is queued (readiness)."""
        return self.synced.is_set()

    def _watched(self, namespace: str) -> bool:
        return "*" in self.namespaces or namespace in self.namespaces

    # --- LIST -------------------------------------------------------------------------------

    async def _list(self) -> JobList:
        if "*" in self.namespaces or len(self.namespaces) == 1:
            return await self.jobs.list_jobs(
                "*" if "*" in self.namespaces else self.namespaces[0], keep=listed_stub
            )
        stubs: list[dict[str, Any]] = []
        index: int | None = None
        for ns in self.namespaces:
            part = await self.jobs.list_jobs(ns, keep=listed_stub)
            stubs.extend(part.stubs)
            index = part.index if index is None else min(index, part.index)
        return JobList(stubs=stubs, index=index or 0)

    async def list_and_enqueue(self) -> int:
        """LIST every watched namespace, hand over what needs a look; returns the LIST index.

        The periodic resync: the stream is already running, so its events keep arriving while
        the unflagged jobs are read."""
        async with self._listing:  # the resync timer and a reconnect may coincide
            try:
                self.memory.begin_listing()
                listing = await self._list()
                await self._hand_over(listing, refill=False)
                return listing.index
            finally:
                self.memory.end_listing()

    async def _list_and_subscribe(self) -> asyncio.Task[bool]:
        """LIST, subscribe at the LIST's index, then read and hand over; returns the task that
        feeds the subscription's batches to ``handle_batch`` until the connection ends."""
        async with self._listing:
            try:
                self.memory.begin_listing()
                listing = await self._list()
                self.metrics.last_index.set(max(listing.index, self.stream.last_index))
                opened = asyncio.Event()
                pump = asyncio.create_task(self._pump(listing.index, opened))
                try:
                    await self._until_subscribed(pump, opened)
                    await self._hand_over(listing, refill=True)
                except BaseException:
                    pump.cancel()
                    with contextlib.suppress(asyncio.CancelledError, NomadError):
                        await pump
                    raise
                return pump
            finally:
                self.memory.end_listing()

    async def _pump(self, index: int, opened: asyncio.Event) -> bool:
        delivered = False
        async for batch in self.stream.connect(index, opened=opened):
            delivered = True
            self.handle_batch(batch)
        return delivered

    async def _until_subscribed(self, pump: asyncio.Task[bool], opened: asyncio.Event) -> None:
        """Until Nomad answered the subscription, it ended, or the grace ran out."""
        waiter = asyncio.create_task(opened.wait())
        try:
            await asyncio.wait(
                {waiter, pump},
                timeout=self.subscribe_grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()

    async def _hand_over(self, listing: JobList, *, refill: bool) -> None:
        found, to_read = self.memory.sort_listing(listing.stubs)
        owed = self.cache.apply_listing(listing.stubs) if self.cache is not None else []
        found |= await self._inspect(to_read, owed)
        found = self.memory.settle(found)
        if self.cache is not None:
            self.cache.end_listing(_listed(listing), listing.index)
            if refill:
                await self._fill_objects(self.cache)
        wanted = set(found)
        if self.known_keys is not None:
            wanted |= {JobKey.of(*k) for k in await self.known_keys() if self._watched(k[0])}
        hand = self.handler.job_changed if self._first_hand_over else self.handler.job_listed
        for key in sorted(wanted):
            hand(key)
        self._first_hand_over = False
        self.lists += 1
        self.synced.set()

    async def _fill_objects(self, cache: JobCache) -> None:
        """After the jobs: every allocation and deployment, one paged LIST each (the cache
        keeps those of kept jobs). Taken after the per-job reads, so every verdict is known."""
        # each page is trimmed and staged as compact JSON as it arrives: a whole cluster's
        # stubs at once, even trimmed and parsed, was most of the process's peak at 10k jobs
        cache.unstage()
        try:
            allocs = await self._paged(
                lambda ns: self.jobs.list_allocations(ns, keep=cache.stage_allocation)
            )
            cache.replace_staged_allocations(allocs.index)
            deployments = await self._paged(
                lambda ns: self.jobs.list_deployments(ns, keep=cache.stage_deployment)
            )
            cache.replace_staged_deployments(deployments.index)
        finally:
            cache.unstage()

    async def _paged(self, lister: Callable[[str], Awaitable[JobList]]) -> JobList:
        if "*" in self.namespaces or len(self.namespaces) == 1:
            return await lister("*" if "*" in self.namespaces else self.namespaces[0])
        out: list[dict[str, Any]] = []
        index: int | None = None
        for ns in self.namespaces:
            part = await lister(ns)
            out.extend(part.stubs)
            index = part.index if index is None else min(index, part.index)
        return JobList(stubs=out, index=index or 0)

    async def _inspect(
        self, candidates: list[tuple[JobKey, int]], owed: Sequence[JobKey] = ()
    ) -> set[JobKey]:
        """Read unflagged jobs (bounded concurrency); cache the verdict per JobModifyIndex.
        With a cache, also the jobs it owes a read, and each job is read at most once; an
        unflagged job the cache already judged at that JobModifyIndex is not read at all."""
        found: set[JobKey] = set()
        judge = dict(candidates)
        reads = list(dict.fromkeys([*owed, *judge]))
        if self.cache is not None:
            for key in [k for k in reads if k not in owed]:
                verdict = self.cache.verdict(key, judge[key])
                if verdict is not None:
                    reads.remove(key)
                    if self.memory.remember(key, judge[key], verdict):
                        found.add(key)

        async def one(key: JobKey) -> None:
            async with self._inspect_limit:
                known_at = self.cache.index_of(key) if self.cache is not None else 0
                job = await self.jobs.get_job(key.job_id, key.namespace)
            if self.cache is not None:
                self.cache.apply_read(key, job, at=known_at)
            if key in judge and self.memory.judge_read(key, judge[key], job):
                found.add(key)

        await _each(reads, one, self._inspect_width)
        return found

    # --- events -----------------------------------------------------------------------------

    def handle_batch(self, batch: EventBatch) -> None:
        """Map one batch to keys (pure bookkeeping, no I/O)."""
        self.metrics.last_index.set(batch.index)
        for event in batch.events:
            if not self._watched(event.namespace):
                continue
            changed = self.cache.apply_event(event) if self.cache is not None else None
            if event.topic == "Job":
                self.memory.job_event(event)
            elif isinstance(changed, Unchanged):
                continue  # nothing a reconcile reads moved: no reconcile for it
            elif event.topic == "Allocation":
                self.memory.allocation_event(event)
            elif event.topic == "Deployment":
                self._deployment_changed(changed)

    def _deployment_changed(self, key: JobKey | None) -> None:
        """Nomad's verdict on a tracked job's version moved (the cache holds the deployment)."""
        if key is not None and key in self.memory.tracked:
            self.handler.deployment_changed(key)

    # --- loops ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stream (with LIST before every connect) and resync until cancelled."""
        if self.cache is not None:
            # Started anew (this replica just became leader): what the cache holds may be as old
            # as the last leadership, so reads go to Nomad until the first fill is done.
            self.cache.ready = False
        self._first_hand_over = True
        async with asyncio.TaskGroup() as group:
            group.create_task(self._stream_loop())
            group.create_task(self._resync_loop())

    async def _stream_loop(self) -> None:
        delay = self.backoff_initial
        first = True
        while True:
            if not first:
                self.metrics.reconnects.inc()
                await self.clock.sleep(delay * (0.5 + self.rng.random()))
                delay = min(delay * 2, self.backoff_max)
            first = False
            try:
                pump = await self._list_and_subscribe()
                if await pump:
                    delay = self.backoff_initial
                log.info("event stream ended", reason=self.stream.end_reason, index=self.last_index)
            except PermissionDenied:
                log.error("event stream or job list refused (403): check the token's ACL policy")
            except NomadError as exc:
                log.warning("event source error", error=str(exc))

    async def _resync_loop(self) -> None:
        while True:
            spread = self.resync_interval * self.resync_jitter
            await self.clock.sleep(self.resync_interval + self.rng.uniform(-spread, spread))
            try:
                await self.list_and_enqueue()
                self.metrics.resyncs.inc()
            except NomadError as exc:
                log.warning("periodic resync failed", error=str(exc))


async def _each(
    items: Sequence[JobKey], fn: Callable[[JobKey], Awaitable[None]], width: int
) -> None:
    """``fn`` over ``items``, ``width`` at a time, by that many workers: a task per item
    waiting on a semaphore costs ~1.5 kB each, 15 MB of peak RSS for a fill of 10k jobs.
    The first error ends the other workers and propagates."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await fn(item)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(width, len(items)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()


STUB_FIELDS = ("ID", "Namespace", "ParentID", "Status", "ModifyIndex", "JobModifyIndex", "Meta")
"""What the source, the predicate's ``stub_*`` and the cache read of a LIST stub."""


def listed_stub(stub: dict[str, Any]) -> dict[str, Any]:
    """A LIST stub cut to ``STUB_FIELDS`` as its page arrives: the stubs are held until every
    per-job read of the fill is done, and a whole one (JobSummary and its per-group counts,
    Datacenters, ...) is ~2.6 kB parsed, 26 MB of the peak at 10k jobs."""
    return {name: stub[name] for name in STUB_FIELDS if name in stub}


def _listed(listing: JobList) -> list[JobKey]:
    return [JobKey.of(str(s.get("Namespace") or "default"), str(s["ID"])) for s in listing.stubs]
