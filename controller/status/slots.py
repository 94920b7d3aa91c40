"""What this process knows about one status record: the stored version and what is pending.

A slot holds the record as Nomad last showed it (its ModifyIndex and content, learned from a
GET, a LIST of the status prefix, or our own CAS write) and, on top of it, the content accepted
by ``StatusStore.update`` but not written yet, with every derive function that produced it.
Readers in this process see ``current`` (pending content first), so the status page and the
health gate never lag behind a coalesced write. On a lost CAS the functions are applied again,
in order, to the winner's record (``rederive``): each writer changes only the fields it owns,
so replaying them keeps the winner's fields and ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field

from controller.status.packed import PACKER
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import MeshStatus

Derive = Callable[[MeshStatus | None], MeshStatus | None]
"""Derives the record to store from the stored one (None: there is none, or it is unreadable);
returns None to store nothing. May be called again on another writer's record, so it must be
pure."""


class FlushSignal:
    """Set while no flush of the record is in flight: ``asyncio.Event``'s clear/set/wait,
    without its cost per record. An Event holds a deque of waiters from birth (~0.9 kB
    measured, one per job for the life of the process); this holds a list only while someone
    waits, which is rare (a graceful flush, a delete during a write)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def clear(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter
        return True


@dataclass(slots=True)
class Slot:
    """One record's stored version, pending content and write bookkeeping.

    The stored version is kept packed (``controller.status.packed``: a few hundred bytes of
    deflated JSON instead of a ~8.7 kB MeshStatus, for every job the process knows) and
    ``stored`` parses it on demand. Pending content is kept packed too: it is short-lived, but
    a cold start holds it for thousands of jobs at once (a record whose rollout is in progress
    waits for the outcome, ``StatusStore._due``), and that high-water stays in the process's
    RSS. ``__slots__`` and a FlushSignal rather than an asyncio.Event: there is one slot per
    job too."""

    key: JobKey
    index: int  # ModifyIndex of the stored record; 0: none stored (a CAS of 0 creates)
    record: InitVar[MeshStatus | None]  # the stored record (kept packed, see ``stored``)
    seen_at: float  # monotonic time the stored version was last read, written or listed
    pending_packed: bytes | None = None  # accepted by update, not written yet (``pending``)
    fns: list[Derive] = field(default_factory=list)  # what produced ``pending``, in order
    written_at: float = float("-inf")  # monotonic time of our last write of this record
    pending_since: float | None = None  # monotonic time the pending content began to pile up
    held: bool = False  # it began under load: held longer (see StatusStore._due)
    due: float = float("-inf")  # when the pending content is to be written (the store decides)
    writing: bool = False  # a flush of this record is in flight
    stale: bool = False  # the stored version is known to be outdated: re-read before a CAS
    failures: int = 0  # flushes in a row that failed (a longer wait before the next)
    flushed: FlushSignal = field(default_factory=FlushSignal)  # set while not writing
    packed: bytes | None = field(init=False, default=None)  # the stored record; None: none

    def __post_init__(self, record: MeshStatus | None) -> None:
        self.stored = record

    @property
    def stored(self) -> MeshStatus | None:
        """The stored record (None: no record, or an unreadable one)."""
        return PACKER.unpack(self.packed) if self.packed is not None else None

    @stored.setter
    def stored(self, record: MeshStatus | None) -> None:
        self.packed = PACKER.pack(record) if record is not None else None

    @property
    def pending(self) -> MeshStatus | None:
        """The content accepted by update and not written yet (None: nothing pending)."""
        return PACKER.unpack(self.pending_packed) if self.pending_packed is not None else None

    @pending.setter
    def pending(self, record: MeshStatus | None) -> None:
        self.pending_packed = PACKER.pack(record) if record is not None else None

    @property
    def has_pending(self) -> bool:
        """Something is pending (``pending`` without parsing it)."""
        return self.pending_packed is not None

    @property
    def current(self) -> MeshStatus | None:
        """The record as it will be stored: the pending content, else the stored one."""
        return self.pending if self.pending_packed is not None else self.stored

    @property
    def idle(self) -> bool:
        """Nothing pending and nothing in flight: the slot may be dropped or replaced."""
        return self.pending_packed is None and not self.writing

    def accept(self, content: MeshStatus, fn: Derive, at: float, *, held: bool = False) -> None:
        """Take ``content`` (made by ``fn``) as the pending content; the first pending change
        says when the pile began and whether it is ``held`` (began under load)."""
        if self.pending_packed is None:
            self.pending_since, self.held = at, held
        self.pending = content
        self.fns.append(fn)

    def discard(self) -> None:
        """Forget the pending content and the functions that made it."""
        self.pending, self.pending_since = None, None
        self.fns.clear()

    def written(
        self,
        content: MeshStatus,
        index: int,
        sent: MeshStatus,
        used: int,
        at: float,
        *,
        items: Mapping[str, str] | None = None,
    ) -> None:
        """Our CAS of ``sent`` (built from the first ``used`` functions) stored ``content`` at
        ``index`` (``items``: its Items as written, if at hand). Updates accepted while it was
        in flight derived from ``sent``, so their pending content already holds it: only their
        functions stay."""
        self.index, self.seen_at, self.written_at = index, at, at
        self.packed = PACKER.pack(content, items)
        self.stale, self.failures = False, 0
        if self.pending_packed == PACKER.pack(sent):
            self.pending, self.pending_since = None, None
            self.fns.clear()
        else:
            del self.fns[:used]
            self.pending_since, self.held = at, False

    def reread(self, index: int, stored: MeshStatus | None, at: float) -> None:
        """The winner's record after a lost CAS: the pending functions replayed on it."""
        self.index, self.stored, self.seen_at, self.stale = index, stored, at, False
        self.pending = rederive(stored, self.fns)
        if self.pending_packed is None:
            self.pending_since = None
            self.fns.clear()


def rederive(base: MeshStatus | None, fns: Sequence[Derive]) -> MeshStatus | None:
    """``fns`` applied in order to ``base`` (a function returning None leaves the record as it
    was); None when the result has the same content as ``base``, so nothing is left to write."""
    record = base
    for fn in fns:
        derived = fn(record)
        if derived is not None:
            record = derived
    if record is None or (base is not None and base.same_content(record)):
        return None
    return record
