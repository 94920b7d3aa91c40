"""The /status document and the probe facts, from plain fakes of the parts they read."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from controller.http.status_view import StatusView
from controller.runtime.clock import FakeClock
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import Phase


@dataclass
class Book:
    phases: dict[JobKey, Phase] = field(default_factory=dict)
    writes: Counter[str] = field(default_factory=Counter)


@dataclass
class Source:
    last_index: int = 0
    last_line_time: float | None = None
    lists: int = 0
    synced: bool = False

    def is_synced(self) -> bool:
        return self.synced


@dataclass
class Leadership:
    is_leader: bool = False
    leader_since: datetime | None = None


class LockError(Exception):
    pass


@dataclass
class Lock:
    identity: str = "me/1"
    version: str = "1.2.3"
    held_by: Mapping[str, str] | None = None
    fails: bool = False
    hangs: bool = False

    async def holder(self) -> Mapping[str, str] | None:
        if self.fails:
            raise LockError("403 from Nomad")
        if self.hangs:
            await asyncio.Event().wait()
        return self.held_by


@dataclass
class Queue:
    depth: int = 0
    waiting: int = 0
    in_flight: frozenset[JobKey] = frozenset()

    def __len__(self) -> int:
        return self.depth


@dataclass
class Backlog:
    pending: int = 0


@dataclass
class Parts:
    clock: FakeClock
    book: Book
    source: Source
    leadership: Leadership
    lock: Lock
    queue: Queue
    backlog: Backlog
    view: StatusView


@pytest.fixture
def parts() -> Parts:
    clock = FakeClock()
    book, source, leadership, lock, queue = Book(), Source(), Leadership(), Lock(), Queue()
    backlog = Backlog()
    view = StatusView(
        book=book,
        source=source,
        leadership=leadership,
        lock=lock,
        queue=queue,
        clock=clock,
        holder_timeout=2.0,
        lock_errors=(LockError,),
        status_backlog=backlog,
    )
    return Parts(clock, book, source, leadership, lock, queue, backlog, view)


async def test_a_leader_reports_itself_its_stream_queue_and_jobs(parts: Parts) -> None:
    p = parts
    since = p.clock.now()
    p.leadership.is_leader, p.leadership.leader_since = True, since
    p.source.last_index, p.source.lists, p.source.synced = 42, 3, True
    p.source.last_line_time = p.clock.monotonic()
    await p.clock.advance(1.5)
    p.book.phases = {JobKey("prod", "b"): Phase.READY, JobKey("default", "a"): Phase.INJECTED}
    p.book.writes.update({"apply": 2})
    p.queue.depth, p.queue.waiting = 1, 4
    p.queue.in_flight = frozenset({JobKey("default", "a")})
    p.backlog.pending = 7

    doc = await p.view.status()

    assert doc == {
        "identity": "me/1",
        "version": "1.2.3",
        "leading": True,
        "leader": {"identity": "me/1", "since": since.isoformat()},
        "ready": True,
        "synced": True,
        "event_stream": {"last_index": 42, "last_line_age_s": 1.5, "lists": 3},
        "queue": {"depth": 1, "waiting": 4, "in_flight": 1},
        "phases": {str(Phase.READY): 1, str(Phase.INJECTED): 1},
        "jobs": [
            {"namespace": "default", "job": "a", "phase": str(Phase.INJECTED)},
            {"namespace": "prod", "job": "b", "phase": str(Phase.READY)},
        ],
        "writes": {"apply": 2},
        "status_records": {"pending": 7},
        "rotation": None,  # no rotation reader given: nothing to say
    }


async def test_a_standby_is_ready_and_names_the_holder_from_the_lock(parts: Parts) -> None:
    p = parts
    p.lock.held_by = {"identity": "other/7", "since": "2026-01-01T00:00:00+00:00", "pid": "7"}
    doc = await p.view.status()
    assert doc["leading"] is False
    assert doc["ready"] is True  # a standby waits for the lock; it is not unready
    assert doc["synced"] is False
    assert doc["leader"] == {"identity": "other/7", "since": "2026-01-01T00:00:00+00:00"}
    assert doc["event_stream"]["last_line_age_s"] is None


async def test_an_unheld_lock_is_an_empty_leader(parts: Parts) -> None:
    assert (await parts.view.status())["leader"] == {}


async def test_a_lock_read_error_is_reported_not_raised(parts: Parts) -> None:
    parts.lock.fails = True
    leader = (await parts.view.status())["leader"]
    assert leader == {"error": "cannot read the leader lock: 403 from Nomad"}


async def test_a_hanging_lock_read_gives_up_after_the_holder_timeout(parts: Parts) -> None:
    parts.lock.hangs = True
    task = asyncio.create_task(parts.view.leader())
    await parts.clock.advance(2.0)
    leader = await asyncio.wait_for(task, 1)
    assert set(leader) == {"error"}


async def test_a_leader_that_has_not_listed_yet_is_not_ready(parts: Parts) -> None:
    parts.leadership.is_leader = True
    parts.leadership.leader_since = parts.clock.now() - timedelta(seconds=5)
    doc = await parts.view.status()
    assert doc["ready"] is False
    facts = parts.view.facts()
    assert facts.leading and not facts.synced
    assert facts.leading_for == 5.0
    assert facts.last_line_age is None  # no line yet


def test_phase_counts_are_per_phase(parts: Parts) -> None:
    parts.book.phases = {
        JobKey("default", "a"): Phase.READY,
        JobKey("default", "b"): Phase.READY,
        JobKey("default", "c"): Phase.INVALID,
    }
    assert parts.view.phase_counts() == {str(Phase.READY): 2, str(Phase.INVALID): 1}
