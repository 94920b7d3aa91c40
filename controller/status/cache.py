"""What this process knows of the status records: one slot per record, read at most once.

A record is read from Nomad the first time it is needed, and kept current by our own CAS writes
(``StatusStore``). Which records exist, and their ModifyIndex, come from a LIST of the status
prefix (:meth:`RecordCache.learn`): a path the LIST lacks needs no GET (the job has no record),
and a slot whose ModifyIndex differs from the listed one (another writer, a failover, an
operator) is dropped and read again when next needed. A slot nobody listed, read or wrote for
``max_cache_age`` is read again too: the backstop for a LIST that never comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Protocol

import structlog
from pydantic import ValidationError

from controller.runtime.clock import Clock
from controller.status.slots import Slot
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import MeshStatus

log = structlog.get_logger(__name__)


class StoredVariable(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def items(self) -> Mapping[str, str]: ...
    @property
    def modify_index(self) -> int: ...


class VariableReader(Protocol):
    async def get(self, path: str) -> StoredVariable | None: ...


def parse(items: Mapping[str, str]) -> MeshStatus | None:
    """The record in Items; None (logged) when it is corrupt, so a write replaces it."""
    try:
        return MeshStatus.from_items(items)
    except (ValidationError, ValueError) as exc:
        log.warning("corrupt status record ignored", error=str(exc))
        return None


class RecordCache:
    """The slots by Variable path, and what the last LIST said exists."""

    def __init__(
        self, variables: VariableReader, clock: Clock, *, max_age: float, reads: int
    ) -> None:
        self.variables = variables
        self.clock = clock
        self.max_age = max_age
        self.slots: dict[str, Slot] = {}
        self._listed: frozenset[str] | None = None  # paths of the last LIST; None: no LIST yet
        self._listed_at = float("-inf")
        self._reads = asyncio.Semaphore(reads)

    async def read(self, path: str) -> tuple[int, MeshStatus | None]:
        """(ModifyIndex, record) as Nomad has it now; (0, None) when there is none."""
        async with self._reads:
            var = await self.variables.get(path)
        return (var.modify_index, parse(var.items)) if var is not None else (0, None)

    async def slot(self, key: JobKey, path: str) -> Slot:
        """The slot of ``path``: cached, known absent from the last LIST, or read now."""
        now = self.clock.monotonic()
        slot = self.slots.get(path)
        if slot is not None and not slot.idle:
            return slot
        if slot is not None and not slot.stale and now - slot.seen_at <= self.max_age:
            return slot
        listed = self._listed is not None and now - self._listed_at <= self.max_age
        if slot is None and listed and path not in (self._listed or ()):
            slot = self.slots[path] = Slot(key, 0, None, self._listed_at)
            return slot
        index, stored = await self.read(path)
        slot = self.slots.get(path)
        if slot is not None and (not slot.idle or slot.index > index):
            return slot  # an update, a flush or our newer write got in during the read
        slot = self.slots[path] = Slot(key, index, stored, self.clock.monotonic())
        return slot

    def absent(self, key: JobKey, path: str) -> None:
        """The record is gone (we deleted it, or found none)."""
        self.slots[path] = Slot(key, 0, None, self.clock.monotonic())

    def learn(self, listed: Iterable[StoredVariable]) -> None:
        """A LIST of the status prefix: confirm the slots it agrees with, drop the ones another
        writer moved or removed (read again when next needed), remember which records exist."""
        now = self.clock.monotonic()
        indexes = {v.path: v.modify_index for v in listed}
        for path, slot in list(self.slots.items()):
            if not slot.idle:
                continue  # its CAS will tell
            index = indexes.get(path, 0)
            if index == slot.index != 0:
                slot.seen_at = now
            elif not 0 < index < slot.index:  # (a smaller index: the LIST predates our write)
                del self.slots[path]  # moved, removed, or absent (the LIST says so from now)
        self._listed, self._listed_at = frozenset(indexes), now

    def forget(self) -> None:
        """Drop everything known and pending."""
        self.slots.clear()
        self._listed, self._listed_at = None, float("-inf")
