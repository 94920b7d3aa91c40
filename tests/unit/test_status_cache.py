"""What a LIST of the status prefix does to the cache: confirm, drop, or keep each slot, and
answer "no record" for paths it lacks, with no read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.runtime.clock import FakeClock
from controller.status.cache import RecordCache
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import MeshStatus


@dataclass(frozen=True)
class Listed:
    path: str
    modify_index: int
    items: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Reader:
    """Variables that answer every read with ModifyIndex ``index`` and count the reads."""

    index: int = 50
    reads: list[str] = field(default_factory=list)

    async def get(self, path: str) -> Listed:
        self.reads.append(path)
        return Listed(path, self.index, MeshStatus().to_items())


KEY = JobKey("default", "web")


async def test_a_list_confirms_drops_or_keeps_each_slot_by_its_modify_index() -> None:
    reader, clock = Reader(), FakeClock()
    cache = RecordCache(reader, clock, max_age=100.0, reads=4)
    for path in ("same", "moved", "ours-newer", "gone"):
        await cache.slot(KEY, path)
    cache.slots["ours-newer"].index = 60  # our own write landed after the LIST was taken
    await clock.advance(90.0)

    cache.learn([Listed("same", 50), Listed("moved", 55), Listed("ours-newer", 50)])
    await clock.advance(20.0)  # past max_age for anything the LIST did not confirm

    assert set(cache.slots) == {"same", "ours-newer"}
    reader.reads.clear()
    await cache.slot(KEY, "same")  # confirmed by the LIST: no read
    await cache.slot(KEY, "moved")  # another writer moved it: read again
    await cache.slot(KEY, "new")  # the LIST lacks it: no record, no read
    assert reader.reads == ["moved"]
    assert cache.slots["new"].index == 0 and cache.slots["new"].current is None


async def test_without_a_list_a_path_is_read_once_and_again_after_max_age() -> None:
    reader, clock = Reader(), FakeClock()
    cache = RecordCache(reader, clock, max_age=100.0, reads=4)
    await cache.slot(KEY, "web")
    await cache.slot(KEY, "web")
    await clock.advance(101.0)
    await cache.slot(KEY, "web")
    assert reader.reads == ["web", "web"]
