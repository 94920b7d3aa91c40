"""The event source: LIST, then stream from the LIST's index, LIST again on every reconnect.

Nomad's stream silently starts at the oldest buffered index when asked for one it no longer has,
so a reconnect can have a gap nobody reports. The only safe recovery is level-triggered: LIST
(whose ``X-Nomad-Index`` becomes the resume point), enqueue every interesting job, then stream
from that index, dropping replayed frames. A jittered periodic resync covers anything else.

Which keys are enqueued (see ``interest``): LIST stubs carry only *job* meta, so a stub is
flagged when its job meta turns ``mesh.tls`` on. Jobs meshed only through *group* meta (or
marked by us) are found (1) from Job events, which carry the whole job, (2) through
``known_keys`` (the status records: every job we ever reconciled), and (3) with
``inspect_unflagged`` (default), by reading each unflagged job once per JobModifyIndex — the
verdict is cached, and Job events refresh it, so steady-state resyncs read nothing extra.
Without inspection, any stub with a ``mesh.tls*`` key is enqueued as a wide net instead.
Allocation events are mapped to their job only when that job is known to be interesting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from controller.nomad.errors import NomadError, PermissionDenied
from controller.nomad.interest import job_interesting, stub_flagged, stub_maybe_interesting
from controller.nomad.jobs import JobList, NomadJobs
from controller.nomad.metrics import StreamMetrics, stream_metrics
from controller.nomad.stream import Event, EventBatch, EventStream
from controller.runtime.clock import Clock, SystemClock
from crds_equivalent.jobkey import JobKey

log = structlog.get_logger(__name__)


KnownKeys = Callable[[], Awaitable[Iterable[JobKey]]]


class NomadEventSource:
    """Feeds ``enqueue`` with the keys of meshed or marked jobs. Run it as a leader-only task."""

    def __init__(
        self,
        jobs: NomadJobs,
        stream: EventStream,
        enqueue: Callable[[JobKey], None],
        *,
        namespaces: Sequence[str] = ("*",),
        on_allocation: Callable[[JobKey], None] | None = None,
        known_keys: KnownKeys | None = None,
        inspect_unflagged: bool = True,
        inspect_concurrency: int = 8,
        resync_interval: float = 600.0,
        resync_jitter: float = 0.1,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.jobs = jobs
        self.stream = stream
        self.enqueue = enqueue
        self.on_allocation = on_allocation or enqueue
        self.namespaces = tuple(namespaces)
        self.known_keys = known_keys
        self.inspect_unflagged = inspect_unflagged
        self._inspect_limit = asyncio.Semaphore(inspect_concurrency)
        self.resync_interval = resync_interval
        self.resync_jitter = resync_jitter
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.clock: Clock = clock or SystemClock()
        self.metrics: StreamMetrics = stream_metrics(registry or CollectorRegistry())
        self.rng = rng or random.Random()
        self.meshed: set[JobKey] = set()
        self._inspected: dict[JobKey, tuple[int, bool]] = {}
        self.synced = asyncio.Event()
        self._listing = asyncio.Lock()
        self._since_list: tuple[dict[JobKey, bool], bool] = ({}, False)
        self.lists = 0

    @property
    def last_index(self) -> int:
        return self.stream.last_index

    @property
    def last_line_time(self) -> float | None:
        return self.stream.last_line_time

    def _watched(self, namespace: str) -> bool:
        return "*" in self.namespaces or namespace in self.namespaces

    # --- LIST -------------------------------------------------------------------------------

    async def _list(self) -> JobList:
        if "*" in self.namespaces or len(self.namespaces) == 1:
            return await self.jobs.list_jobs("*" if "*" in self.namespaces else self.namespaces[0])
        stubs: list[dict[str, Any]] = []
        index: int | None = None
        for ns in self.namespaces:
            part = await self.jobs.list_jobs(ns)
            stubs.extend(part.stubs)
            index = part.index if index is None else min(index, part.index)
        return JobList(stubs=stubs, index=index or 0)

    async def list_and_enqueue(self) -> int:
        """LIST every watched namespace and enqueue what needs a look; returns the LIST index."""
        async with self._listing:  # the resync timer and a reconnect may coincide
            try:
                return await self._list_and_enqueue()
            finally:
                self._since_list = ({}, False)

    async def _list_and_enqueue(self) -> int:
        self._since_list = ({}, True)
        listing = await self._list()
        meshed: set[JobKey] = set()
        to_read: list[tuple[JobKey, int]] = []
        listed: set[JobKey] = set()
        for stub in listing.stubs:
            key = JobKey(str(stub.get("Namespace") or "default"), str(stub["ID"]))
            listed.add(key)
            modify_index = int(stub.get("JobModifyIndex") or 0)
            cached = self._inspected.get(key)
            if stub_flagged(stub):
                meshed.add(key)
            elif cached is not None and cached[0] == modify_index:
                if cached[1]:
                    meshed.add(key)
            elif self.inspect_unflagged:
                to_read.append((key, modify_index))
            elif stub_maybe_interesting(stub) or key in self.meshed:
                meshed.add(key)
        self._inspected = {k: v for k, v in self._inspected.items() if k in listed}
        meshed |= await self._inspect(to_read)
        # Events that arrived while we listed are newer than the LIST: they win.
        changed, _ = self._since_list
        for key, interesting in changed.items():
            if interesting:
                meshed.add(key)
            else:
                meshed.discard(key)
        self.meshed = meshed
        wanted = set(meshed)
        if self.known_keys is not None:
            wanted |= {JobKey(*k) for k in await self.known_keys() if self._watched(k[0])}
        for key in sorted(wanted):
            self.enqueue(key)
        self.lists += 1
        self.synced.set()
        return listing.index

    async def _inspect(self, candidates: list[tuple[JobKey, int]]) -> set[JobKey]:
        """Read unflagged jobs (bounded concurrency); cache the verdict per JobModifyIndex."""
        found: set[JobKey] = set()

        async def one(key: JobKey, modify_index: int) -> None:
            async with self._inspect_limit:
                job = await self.jobs.get_job(key.job_id, key.namespace)
            interesting = job is not None and job_interesting(job)
            self._inspected[key] = (modify_index, interesting)
            if interesting:
                found.add(key)

        await asyncio.gather(*(one(k, i) for k, i in candidates))
        return found

    # --- events -----------------------------------------------------------------------------

    def handle_batch(self, batch: EventBatch) -> None:
        """Map one batch to keys (pure bookkeeping, no I/O)."""
        self.metrics.last_index.set(batch.index)
        for event in batch.events:
            if not self._watched(event.namespace):
                continue
            if event.topic == "Job":
                self._job_event(event)
            elif event.topic == "Allocation":
                alloc = event.payload.get("Allocation") or {}
                job_id = alloc.get("JobID") or (event.filter_keys[0] if event.filter_keys else "")
                key = JobKey(event.namespace, str(job_id))
                if key in self.meshed:
                    self.on_allocation(key)

    def _job_event(self, event: Event) -> None:
        job = event.payload.get("Job") or {}
        key = JobKey(event.namespace or str(job.get("Namespace") or "default"), event.key)
        interesting = job_interesting(job)
        changed, listing = self._since_list
        if listing:
            changed[key] = interesting
        if interesting:
            self.meshed.add(key)
            self.enqueue(key)
        elif key in self.meshed:
            # Was ours, is not any more (uninjected, flag gone, or purged): one last look.
            self.meshed.discard(key)
            self.enqueue(key)
        if event.payload.get("Deleted") or event.type == "JobBatchDeregistered":
            self.meshed.discard(key)
            self._inspected.pop(key, None)
        else:
            self._inspected[key] = (int(job.get("JobModifyIndex") or 0), interesting)

    # --- loops ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stream (with LIST before every connect) and resync until cancelled."""
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
                list_index = await self.list_and_enqueue()
                self.metrics.last_index.set(max(list_index, self.stream.last_index))
                delivered = False
                async for batch in self.stream.connect(list_index):
                    delivered = True
                    self.handle_batch(batch)
                if delivered:
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
