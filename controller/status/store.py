"""The status store: one Nomad Variable per job, written with CAS and only when it changed.

Status lives outside the job on purpose (writing it into the job would create job versions and
feed our own event loop). Nomad's docs warn that Variables suit small, slowly changing data, so
a write happens only when the content differs (``updated_at`` and transition times ignored), and
a per-process cache of (ModifyIndex, status) saves the read before each write. The leader is the
only writer, so the cache is normally exact; entries still expire (``max_cache_age``) so that a
record changed behind our back is repaired. Every write is a CAS on the last ModifyIndex seen.

Reconcilers change a record with :meth:`StatusStore.update`: one read, then the record derived
from the stored one by the caller's function, CAS-written when its content changed. Three
reconcilers of one process (and, across a failover, another process) write the same record, so
on a conflict ``update`` re-reads and derives again — re-sending a record computed from the
stale read would erase what the winner just wrote. After ``CAS_ATTEMPTS`` lost races it raises
:class:`StatusConflict`, and the work queue's backoff retries the whole reconcile.
:meth:`StatusStore.write` replaces a record wholesale (tools and tests; it retries once).

This package sits beside ``controller.nomad`` (the layering keeps adapters independent), so it
talks to Variables through the small :class:`VariablesPort` that ``NomadVariables`` satisfies.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import structlog
from pydantic import ValidationError

from controller.runtime.clock import Clock, SystemClock
from crds_equivalent.jobkey import JobKey
from crds_equivalent.keys import VAR_STATUS_PREFIX, status_path
from crds_equivalent.status import MeshStatus

log = structlog.get_logger(__name__)

_MAX_PATH = 128  # Nomad: ^[a-zA-Z0-9-_~/]{1,128}$
_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ESCAPE = re.compile(r"~([0-9a-f]{2})")

# update(): a read and up to two re-reads. Enough for the other two reconcilers of this process
# each moving the record once between our read and our CAS; beyond that, back off via the queue.
CAS_ATTEMPTS = 3

Derive = Callable[[MeshStatus | None], MeshStatus | None]
"""Derives the record to store from the stored one (None: there is none, or it is unreadable);
returns None to store nothing. Called once per attempt, so it must be pure."""

_Entry = tuple[int, MeshStatus | None]


class StoredVariable(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def items(self) -> Mapping[str, str]: ...
    @property
    def modify_index(self) -> int: ...


class VariablesPort(Protocol):
    """What the store needs from Nomad Variables (``controller.nomad.NomadVariables``)."""

    async def get(self, path: str) -> StoredVariable | None: ...
    async def cas_put(
        self, path: str, items: Mapping[str, str], *, cas: int
    ) -> StoredVariable | None: ...
    async def cas_delete(self, path: str, *, cas: int) -> bool: ...
    async def list_prefix(self, prefix: str = "") -> Sequence[StoredVariable]: ...


class StatusConflict(Exception):
    """Another writer kept winning the CAS race for this record."""


def encode_segment(value: str) -> str:
    """Make a namespace or job ID a valid Variable path segment (reversibly): characters
    outside ``[A-Za-z0-9_-]`` (dots, slashes, ``~``) become ``~xx`` per UTF-8 byte."""
    out = []
    for ch in value:
        if _PLAIN.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"~{b:02x}" for b in ch.encode())
    return "".join(out)


def decode_segment(value: str) -> str:
    """Inverse of :func:`encode_segment`."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(value):
        out += value[pos : match.start()].encode()
        out.append(int(match.group(1), 16))
        pos = match.end()
    out += value[pos:].encode()
    return out.decode("utf-8", "replace")


def path_for(namespace: str, job: str) -> str:
    """The record's path; over-long IDs are shortened with a hash (the key is then in Items)."""
    path = status_path(encode_segment(namespace), encode_segment(job))
    if len(path) <= _MAX_PATH:
        return path
    digest = hashlib.sha256(f"{namespace}\x00{job}".encode()).hexdigest()[:16]
    head = status_path(encode_segment(namespace), "")
    return head + encode_segment(job)[: _MAX_PATH - len(head) - 18] + "~~" + digest


def key_of(path: str) -> JobKey | None:
    """(namespace, job) from a record path; None when the path is hashed or not a record."""
    rest = path.removeprefix(VAR_STATUS_PREFIX + "/")
    if rest == path or "~~" in rest or rest.count("/") != 1:
        return None
    ns, job = rest.split("/")
    return JobKey(decode_segment(ns), decode_segment(job))


def _parse(items: Mapping[str, str]) -> MeshStatus | None:
    try:
        return MeshStatus.from_items(items)
    except (ValidationError, ValueError) as exc:
        log.warning("corrupt status record ignored", error=str(exc))
        return None


class StatusStore:
    """Read, write-on-change, delete and list the per-job status records."""

    def __init__(
        self,
        variables: VariablesPort,
        *,
        clock: Clock | None = None,
        read_concurrency: int = 16,
        max_cache_age: float = 600.0,
    ) -> None:
        self.variables = variables
        self.clock: Clock = clock or SystemClock()
        self.max_cache_age = max_cache_age
        self._cache: dict[str, _Entry] = {}
        self._cached_at: dict[str, float] = {}
        self._read_limit = asyncio.Semaphore(read_concurrency)
        self.writes = 0
        # Told of every record this store wrote. The phase book behind /status and the
        # mesh_jobs gauge listens: the health reconciler's writes move phases too (a job turns
        # Ready on a health write), and without this the book would show the mesh's last word.
        self.on_write: Callable[[JobKey, MeshStatus], None] | None = None

    async def _read(self, path: str) -> _Entry | None:
        var = await self.variables.get(path)
        if var is None:
            self._cache.pop(path, None)
            self._cached_at.pop(path, None)
            return None
        entry = (var.modify_index, _parse(var.items))
        self._remember(path, entry)
        return entry

    def _remember(self, path: str, entry: _Entry) -> None:
        self._cache[path] = entry
        self._cached_at[path] = self.clock.monotonic()

    def _cached(self, path: str) -> _Entry | None:
        at = self._cached_at.get(path)
        if at is None or self.clock.monotonic() - at > self.max_cache_age:
            return None
        return self._cache.get(path)

    async def get(self, namespace: str, job: str) -> MeshStatus | None:
        """The stored status (always read from Nomad), or None."""
        entry = await self._read(path_for(namespace, job))
        return entry[1] if entry else None

    async def peek(self, namespace: str, job: str) -> MeshStatus | None:
        """The record as this store last read or wrote it (at most ``max_cache_age`` old), read
        from Nomad only when it has none. For gates that decide whether work is worth doing;
        never the basis of a write (``update`` reads before it derives)."""
        path = path_for(namespace, job)
        entry = self._cached(path)
        if entry is None:
            entry = await self._read(path)
        return entry[1] if entry else None

    async def update(self, namespace: str, job: str, fn: Derive) -> MeshStatus | None:
        """Read the record, store ``fn(record)`` with CAS when its content differs (timestamps
        aside), and return the record as now stored. On a lost CAS, re-read and call ``fn``
        again on what the winner wrote; after ``CAS_ATTEMPTS`` losses raise StatusConflict."""
        path = path_for(namespace, job)
        stored, _ = await self._store(namespace, job, path, await self._read(path), fn)
        return stored

    async def write(self, namespace: str, job: str, status: MeshStatus) -> bool:
        """Store ``status`` unless the stored one has the same content; True when written.
        Replaces the whole record: reconcilers use ``update`` so they keep each other's fields."""
        path = path_for(namespace, job)
        entry = self._cached(path)
        if entry is None:
            entry = await self._read(path)
        _, written = await self._store(namespace, job, path, entry, lambda _: status, attempts=2)
        return written

    async def _store(
        self,
        namespace: str,
        job: str,
        path: str,
        entry: _Entry | None,
        fn: Derive,
        *,
        attempts: int = CAS_ATTEMPTS,
    ) -> tuple[MeshStatus | None, bool]:
        """The CAS loop: derive from ``entry``, write on change, re-read on conflict."""
        for attempt in range(attempts):
            previous = entry[1] if entry is not None else None
            status = fn(previous)
            if status is None or (previous is not None and previous.same_content(status)):
                return previous, False
            stamped = status.model_copy(update={"updated_at": self.clock.now().isoformat()})
            items = stamped.to_items()
            if path != status_path(namespace, job):
                items |= {"namespace": namespace, "job": job}
            written = await self.variables.cas_put(
                path, items, cas=entry[0] if entry is not None else 0
            )
            if written is not None:
                self._remember(path, (written.modify_index, stamped))
                self.writes += 1
                if self.on_write is not None:
                    self.on_write(JobKey(namespace, job), stamped)
                return stamped, True
            log.info("status CAS conflict, re-reading", path=path, attempt=attempt)
            entry = await self._read(path)
        raise StatusConflict(f"status of {namespace}/{job}: lost the CAS race {attempts} times")

    async def delete(self, namespace: str, job: str) -> bool:
        """Remove the record (the job is gone); True when something was deleted."""
        path = path_for(namespace, job)
        for _ in range(2):
            entry = await self._read(path)
            if entry is None:
                return False
            if await self.variables.cas_delete(path, cas=entry[0]):
                self._cache.pop(path, None)
                self._cached_at.pop(path, None)
                return True
        raise StatusConflict(f"status of {namespace}/{job}: delete lost the CAS race twice")

    async def keys(self) -> list[JobKey]:
        """(namespace, job) of every record — one LIST, no item reads (hashed paths aside)."""
        out: list[JobKey] = []
        for meta in await self.variables.list_prefix(VAR_STATUS_PREFIX + "/"):
            key = key_of(meta.path)
            if key is None and "~~" in meta.path:
                var = await self.variables.get(meta.path)
                if var is not None and "namespace" in var.items and "job" in var.items:
                    key = JobKey(var.items["namespace"], var.items["job"])
            if key is not None:
                out.append(key)
        return sorted(out)

    async def list_all(self) -> dict[JobKey, MeshStatus]:
        """Every readable status record, keyed by (namespace, job)."""
        keys = await self.keys()

        async def one(key: JobKey) -> tuple[JobKey, MeshStatus | None]:
            async with self._read_limit:
                return key, await self.get(*key)

        pairs = await asyncio.gather(*(one(k) for k in keys))
        return {k: s for k, s in pairs if s is not None}
