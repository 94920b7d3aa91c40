"""The status store: one Nomad Variable per job, cached, written with CAS and coalesced.

Status lives outside the job on purpose (writing it into the job would create job versions and
feed our own event loop). Nomad's docs warn that Variables suit small, slowly changing data, and
at 10k jobs every read and write counts, so:

- Records are read once and kept current by our own CAS writes; the LIST of the status prefix
  (:meth:`keys`, which feeds the event source's ``known_keys``) says which records exist and
  which another writer moved (``controller.status.cache``).
- :meth:`update` derives the record from the one this process knows; a change of content
  (``updated_at`` and transition times aside) is written at once if the record was not written
  in the last ``write_interval`` seconds, otherwise at the end of that window with whatever
  else changed meanwhile (:meth:`run` writes them; the App runs it on the leader); under load
  longer, and a record whose rollout is in progress until its outcome (``_due``). Readers in
  this process (:meth:`get`, :meth:`peek`, ``on_write``) see the pending content.
- Every write is a CAS on the last ModifyIndex seen, so a stale cache costs a retry, never a
  clobber. Three reconcilers of one process (and, across a failover, another process) write
  the same record: on a lost CAS the record is re-read and every pending derive function is
  applied again to the winner's record, in order (each changes only its owner's fields).
  After ``CAS_ATTEMPTS`` lost races :class:`StatusConflict` is raised to the writer whose
  update was writing (its work queue backs off); the content stays pending.
- :meth:`flush` writes everything pending now; :meth:`release` is the Manager's hook when
  leadership ends (shutdown, hand-over, or loss).

This package sits beside ``controller.nomad`` (the layering keeps adapters independent), so it
talks to Variables through the small :class:`VariablesPort` that ``NomadVariables`` satisfies.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import structlog

from controller.runtime.clock import Clock, SystemClock
from controller.status.cache import RecordCache, StoredVariable
from controller.status.paths import (
    decode_segment,
    encode_segment,
    is_hashed,
    key_of,
    path_for,
)
from controller.status.schedule import FlushSchedule
from controller.status.slots import Derive, Slot
from controller.status.writer import CAS_ATTEMPTS, SlotWriter, StatusConflict
from crds_equivalent.jobkey import JobKey
from crds_equivalent.keys import VAR_STATUS_PREFIX
from crds_equivalent.status import MeshStatus

# Records beginning to change within one window at which the store counts as under load; a
# record that begins to change then is held BUSY_FACTOR windows, its first change too, and up
# to ROLLOUT_HOLD seconds while it says its rollout is in progress (``StatusStore._due``).
BUSY_AT = 8
BUSY_FACTOR = 5
# Nomad's default update.progress_deadline (structs.DefaultUpdateStrategy): a rollout still in
# progress after it has failed, unless the job sets a longer deadline. A fixed number of write
# windows was too short under real load: at a 10k cold start the rollouts outlast a minute,
# and each record was written twice, "rolling out" and then its outcome.
ROLLOUT_HOLD = 600.0

__all__ = [
    "CAS_ATTEMPTS",
    "Derive",
    "StatusConflict",
    "StatusStore",
    "decode_segment",
    "encode_segment",
    "key_of",
    "path_for",
]

log = structlog.get_logger(__name__)


class VariablesPort(Protocol):
    """What the store needs from Nomad Variables (``controller.nomad.NomadVariables``)."""

    async def get(self, path: str) -> StoredVariable | None: ...
    async def cas_put(
        self, path: str, items: Mapping[str, str], *, cas: int
    ) -> StoredVariable | None: ...
    async def cas_delete(self, path: str, *, cas: int) -> bool: ...
    async def list_prefix(self, prefix: str = "") -> Sequence[StoredVariable]: ...


class StatusStore:
    """Read (cached), update (coalesced, CAS), delete and list the per-job status records."""

    def __init__(
        self,
        variables: VariablesPort,
        *,
        clock: Clock | None = None,
        read_concurrency: int = 16,
        max_cache_age: float = 1800.0,
        write_interval: float = 0.0,
    ) -> None:
        self.variables = variables
        self.clock: Clock = clock or SystemClock()
        self.max_cache_age = max_cache_age
        self.write_interval = write_interval
        self._cache = RecordCache(
            variables, self.clock, max_age=max_cache_age, reads=read_concurrency
        )
        self._slots = self._cache.slots
        self._schedule = FlushSchedule(self.clock)
        self._changes: deque[float] = deque()  # when records began to change (see _busy)
        self._flushing = asyncio.Semaphore(read_concurrency)  # flushes in flight
        self._writer = SlotWriter(
            variables,
            self._cache,
            self._schedule,
            self.clock,
            interval=write_interval,
            changed=self._tell,
        )
        # Told of every record this store accepted (pending or written). The phase book behind
        # /status and the mesh_jobs gauge listens: the health reconciler's writes move phases
        # too (a job turns Ready on a health write), and without this the book would show the
        # mesh's last word.
        self.on_write: Callable[[JobKey, MeshStatus], None] | None = None

    @property
    def writes(self) -> int:
        """Status Variable writes that landed (tests and chaos count them)."""
        return self._writer.writes

    @property
    def pending(self) -> int:
        """Records whose accepted content is not written yet (coalesced or held, see
        ``_due``): /status shows it, so an operator or a benchmark can tell "quiet" from
        "holding writes"."""
        return sum(1 for slot in self._slots.values() if slot.has_pending)

    def forget(self) -> None:
        """Drop everything cached and pending (leadership ended: the next leader decides)."""
        self._cache.forget()
        self._schedule.clear()

    # --- reading ---------------------------------------------------------------------------

    async def get(self, namespace: str, job: str) -> MeshStatus | None:
        """The record as it is or will be stored: the pending content, else the cached record,
        read from Nomad only when this process has no current copy."""
        path = path_for(namespace, job)
        return (await self._cache.slot(JobKey.of(namespace, job), path)).current

    async def peek(self, namespace: str, job: str) -> MeshStatus | None:
        """The same answer as :meth:`get` (the gates' name for it, kept for the Protocol)."""
        return await self.get(namespace, job)

    # --- writing ---------------------------------------------------------------------------

    async def update(self, namespace: str, job: str, fn: Derive) -> MeshStatus | None:
        """Derive the record from the one this process knows and return it as it will be
        stored (None: there is none and ``fn`` made none). A change is written at once when
        this record was not written in the last ``write_interval``, otherwise at the end of
        that window; a lost CAS re-reads and applies every pending ``fn`` again. Raises
        StatusConflict after ``CAS_ATTEMPTS`` lost races of a write made here (the content
        stays pending), or what Nomad raised."""
        key, path = JobKey.of(namespace, job), path_for(namespace, job)
        slot = await self._cache.slot(key, path)
        base = slot.current
        status = fn(base)
        if status is None or (base is not None and base.same_content(status)):
            return base
        now = self.clock.monotonic()
        if not slot.has_pending:
            busy = self._busy(now)
            self._changes.append(now)
            slot.accept(status, fn, now, held=busy)
        else:
            slot.accept(status, fn, now)
        self._tell(slot)
        slot.due = self._due(slot, status)
        if slot.writing:
            return slot.current  # the flush in flight writes it next, or schedules it
        if slot.due > now:
            self._schedule.at(slot.due, path)
            return slot.current
        await self._writer.flush(path, slot, raise_errors=True)
        return slot.current

    def _due(self, slot: Slot, status: MeshStatus) -> float:
        """When the slot's pending content goes out. Never sooner than a window after our last
        write of the record. Quiet: at once, or at that window's end. A record whose first
        pending change came under load (a cold start, a resync that changed many jobs) waits
        ``BUSY_FACTOR`` windows from that change, so what follows soon (the health
        reconciler's first facts) shares the write; and a record whose rollout is still in
        progress waits for the rollout to end, ``ROLLOUT_HOLD`` seconds at most, so a new
        job's injection, rollout progress and outcome are one write, not one per step. Readers
        in this process see the pending content meanwhile."""
        earliest = slot.written_at + self.write_interval
        if not slot.held or slot.pending_since is None:
            return earliest
        hold = ROLLOUT_HOLD if status.rolling_out else BUSY_FACTOR * self.write_interval
        return max(earliest, slot.pending_since + hold)

    def _busy(self, now: float) -> bool:
        """``BUSY_AT`` records began to change within the last window (a record's first pending
        change counts, its later ones do not: one record changing often is not load; and
        changes, not writes, since the writes are what coalescing defers)."""
        if not self.write_interval:
            return False
        while self._changes and self._changes[0] <= now - self.write_interval:
            self._changes.popleft()
        return len(self._changes) >= BUSY_AT

    async def write(self, namespace: str, job: str, status: MeshStatus) -> bool:
        """Store ``status`` now unless the stored record has the same content; True when
        written. Replaces the whole record, pending content included (tools and tests:
        reconcilers use ``update`` so they keep each other's fields); retries a lost CAS once."""
        key, path = JobKey.of(namespace, job), path_for(namespace, job)
        slot = await self._cache.slot(key, path)
        slot.discard()
        if slot.stored is not None and slot.stored.same_content(status):
            return False
        slot.accept(status, lambda _: status, self.clock.monotonic())
        before = self.writes
        await self._writer.flush(path, slot, attempts=2, raise_errors=True)
        return self.writes > before

    def _tell(self, slot: Slot) -> None:
        if self.on_write is not None and slot.current is not None:
            self.on_write(slot.key, slot.current)

    # --- flushing --------------------------------------------------------------------------

    async def run(self) -> None:
        """Write coalesced records as their windows end, until cancelled (leader only)."""
        await self._schedule.run(self._flush_paths)

    async def _flush_paths(
        self,
        paths: Iterable[str],
        *,
        force: bool = False,
        attempts: int = CAS_ATTEMPTS,
        rederive: bool = True,
    ) -> None:
        """Flush each path whose window has ended (all of them with ``force``)."""
        now = self.clock.monotonic()

        async def one(path: str) -> None:
            slot = self._slots.get(path)
            if slot is None or not slot.has_pending or slot.writing:
                return
            due = max(slot.due, slot.written_at + self.write_interval)
            if due > now and not force:
                self._schedule.at(due, path)
                return
            async with self._flushing:
                await self._writer.flush(path, slot, attempts=attempts, rederive=rederive)

        await asyncio.gather(*(one(p) for p in paths))

    async def flush(self, *, graceful: bool = True) -> None:
        """Write everything pending now, window or not, and wait for writes in flight.
        ``graceful=False`` (leadership lost): one CAS each, and a lost one is given up. What
        Nomad refuses stays pending (logged), so this returns even while Nomad is down."""
        for _ in range(CAS_ATTEMPTS):
            busy = [s.flushed.wait() for s in self._slots.values() if s.writing]
            waiting = [p for p, s in self._slots.items() if s.has_pending and not s.writing]
            if not busy and not waiting:
                return
            if graceful:
                await self._flush_paths(waiting, force=True)
            else:
                await self._flush_paths(waiting, force=True, attempts=1, rederive=False)
            await asyncio.gather(*busy)
            if not graceful:
                return
        left = sum(1 for s in self._slots.values() if s.has_pending)
        if left:
            log.warning("status records still pending after a flush", records=left)

    async def release(self, graceful: bool) -> None:
        """The Manager's hook when this process stops leading: write what is pending (one try
        each when leadership was lost: a newer leader's record wins), then forget it all."""
        try:
            await self.flush(graceful=graceful)
        finally:
            self.forget()

    # --- deleting and listing --------------------------------------------------------------

    async def delete(self, namespace: str, job: str) -> bool:
        """Remove the record (the job is gone) and anything pending for it; True when something
        was deleted. A record the cache knows is absent costs no call."""
        key, path = JobKey.of(namespace, job), path_for(namespace, job)
        slot = await self._cache.slot(key, path)
        slot.discard()
        await slot.flushed.wait()  # a write in flight lands first, then goes
        index = slot.index
        for _ in range(2):
            if index == 0:
                self._cache.absent(key, path)
                return False
            if await self.variables.cas_delete(path, cas=index):
                self._cache.absent(key, path)
                return True
            index, _ = await self._cache.read(path)
        raise StatusConflict(f"status of {namespace}/{job}: delete lost the CAS race twice")

    async def keys(self) -> list[JobKey]:
        """(namespace, job) of every record — one LIST, no item reads (hashed paths aside).
        The LIST also tells the cache which records exist and which changed."""
        listed = await self.variables.list_prefix(VAR_STATUS_PREFIX + "/")
        self._cache.learn(listed)
        out: list[JobKey] = []
        for meta in listed:
            key = key_of(meta.path)
            if key is None and is_hashed(meta.path):
                var = await self.variables.get(meta.path)
                if var is not None and "namespace" in var.items and "job" in var.items:
                    key = JobKey.of(var.items["namespace"], var.items["job"])
            if key is not None:
                out.append(key)
        return sorted(out)

    async def list_all(self) -> dict[JobKey, MeshStatus]:
        """Every readable status record, keyed by (namespace, job)."""
        keys = await self.keys()
        found = await asyncio.gather(*(self.get(*k) for k in keys))
        return {k: s for k, s in zip(keys, found, strict=True) if s is not None}
