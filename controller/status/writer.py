"""The CAS write of one record's pending content: replay on a lost race, retry on a failure.

A slot's pending content goes to Nomad with CAS on the ModifyIndex last seen. A lost CAS means
another writer (a reconciler of this process writing directly, or another process) moved the
record: it is re-read and every pending derive function is applied again to the winner's
record, in order, so the winner's fields and ours both survive. Updates accepted while a write
is in flight are written next, at once or when the coalescing window ends. A write Nomad
refuses stays pending and is scheduled again with a growing delay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from controller.runtime.clock import Clock
from controller.status.cache import RecordCache, StoredVariable
from controller.status.schedule import FlushSchedule
from controller.status.slots import Slot
from crds_equivalent.keys import status_path

log = structlog.get_logger(__name__)

# A flush: a CAS and up to two re-reads. Enough for the other two reconcilers of this process
# each moving the record once between our read and our CAS; beyond that, back off.
CAS_ATTEMPTS = 3
RETRY_CAP = 30.0  # longest wait before a failed flush is tried again


class CasWriter(Protocol):
    async def cas_put(
        self, path: str, items: Mapping[str, str], *, cas: int
    ) -> StoredVariable | None: ...


class StatusConflict(Exception):
    """Another writer kept winning the CAS race for this record."""


class SlotWriter:
    """Writes slots until nothing is pending; counts the writes that landed."""

    def __init__(
        self,
        variables: CasWriter,
        cache: RecordCache,
        schedule: FlushSchedule,
        clock: Clock,
        *,
        interval: float,
        changed: Callable[[Slot], None],
    ) -> None:
        self.variables = variables
        self.cache = cache
        self.schedule = schedule
        self.clock = clock
        self.interval = interval
        self.changed = changed  # the slot's current content moved (a re-read replayed)
        self.writes = 0

    async def flush(
        self,
        path: str,
        slot: Slot,
        *,
        attempts: int = CAS_ATTEMPTS,
        rederive: bool = True,
        raise_errors: bool = False,
    ) -> None:
        """Write the slot's pending content with CAS until nothing is pending; on a lost CAS
        re-read and derive again (``rederive``) or give the record up to the winner."""
        if slot.writing or not slot.has_pending:
            return
        slot.writing = True
        slot.flushed.clear()
        try:
            await self._write_pending(path, slot, attempts, rederive)
        except Exception:
            slot.failures += 1
            if slot.has_pending:
                retry = min(RETRY_CAP, max(self.interval, 0.5) * 2**slot.failures)
                self.schedule.at(self.clock.monotonic() + retry, path)
            if raise_errors:
                raise
            log.warning("status write failed; will retry", path=path, exc_info=True)
        finally:
            slot.writing = False
            slot.flushed.set()

    async def _write_pending(self, path: str, slot: Slot, attempts: int, rederive: bool) -> None:
        lost = 0
        while slot.has_pending:
            if slot.stale and not rederive:
                slot.discard()  # (a lost leader does not derive again: the winner stands)
                return
            if slot.stale:
                await self._reread(path, slot)
                continue
            sent, used = slot.pending, len(slot.fns)
            if sent is None:
                return
            stamped = sent.model_copy(update={"updated_at": self.clock.now().isoformat()})
            items = stamped.to_items()
            body = items
            if path != status_path(*slot.key):
                body = items | {"namespace": slot.key.namespace, "job": slot.key.job_id}
            written = await self.variables.cas_put(path, body, cas=slot.index)
            if written is not None:
                now = self.clock.monotonic()
                slot.written(stamped, written.modify_index, sent, used, now, items=items)
                self.writes += 1
                due = max(slot.due, slot.written_at + self.interval)
                if slot.has_pending and due > self.clock.monotonic():
                    self.schedule.at(due, path)
                    return
                continue
            lost += 1
            log.info("status CAS conflict, re-reading", path=path, attempt=lost)
            if not rederive:
                slot.discard()
                slot.stale = True
                return
            if lost >= attempts:
                slot.stale = True
                raise StatusConflict(f"status of {path}: lost the CAS race {attempts} times")
            await self._reread(path, slot)

    async def _reread(self, path: str, slot: Slot) -> None:
        index, stored = await self.cache.read(path)
        slot.reread(index, stored, self.clock.monotonic())
        self.changed(slot)
