"""CachedJobs: reads from the cache, writes to Nomad, and our own writes read back (no server).

Nomad is a stand-in that stores one job and counts the calls, so each test says what a read
cost; the cache is the real one."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from controller.nomad.cache import JobCache
from controller.nomad.cached_jobs import CachedJobs
from controller.nomad.errors import Conflict
from controller.nomad.jobs import NomadJobs
from controller.nomad.stream import Event
from controller.runtime.clock import FakeClock
from crds_equivalent.jobkey import JobKey
from reconcilers.mesh.interest import MESH_INTEREST

WEB = JobKey("default", "web")


def job(index: int, *, meshed: bool = True) -> dict[str, Any]:
    return {
        "ID": "web",
        "Namespace": "default",
        "Meta": {"mesh.tls": "true"} if meshed else {},
        "TaskGroups": [],
        "ModifyIndex": index,
        "JobModifyIndex": index,
    }


class FakeNomad(NomadJobs):
    """One stored job; ``register_job`` bumps its index unless the fence fails."""

    def __init__(self, stored: dict[str, Any] | None) -> None:
        self.stored = stored
        self.calls = Counter[str]()

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        self.calls["get"] += 1
        return dict(self.stored) if self.stored is not None else None

    async def register_job(
        self, job: dict[str, Any], *, enforce_index: int | None
    ) -> dict[str, Any]:
        self.calls["register"] += 1
        assert self.stored is not None
        if enforce_index != self.stored["JobModifyIndex"]:
            raise Conflict("Enforcing job modify index")
        index = self.stored["JobModifyIndex"] + 10
        self.stored = {**job, "ModifyIndex": index, "JobModifyIndex": index}
        return {"JobModifyIndex": index}


def store_with(cached: dict[str, Any], nomad: FakeNomad, clock: FakeClock) -> CachedJobs:
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    cache.apply_listing([{k: cached[k] for k in ("ID", "Namespace", "ModifyIndex")}])
    cache.apply_read(WEB, cached)
    cache.end_listing([WEB], cached["ModifyIndex"])
    cache.replace_allocations([], cached["ModifyIndex"])
    cache.replace_deployments([], cached["ModifyIndex"])
    return CachedJobs(cache, nomad, clock=clock, settle=5.0)


def job_event(doc: dict[str, Any]) -> Event:
    return Event("Job", "JobRegistered", "web", "default", (), doc["ModifyIndex"], {"Job": doc})


async def test_reads_come_from_the_cache() -> None:
    nomad = FakeNomad(job(5))
    store = store_with(job(5), nomad, FakeClock())
    assert (await store.get_job("web", "default") or {})["JobModifyIndex"] == 5
    assert await store.job_allocations("web", "default") == []
    assert await store.latest_deployment("web", "default") is None
    assert nomad.calls == {}


async def test_a_read_after_our_register_waits_for_its_event() -> None:
    clock = FakeClock()
    nomad = FakeNomad(job(5))
    store = store_with(job(5), nomad, clock)
    await store.register_job(job(5), enforce_index=5)
    reader = asyncio.create_task(store.get_job("web", "default"))
    await clock.settle()
    assert not reader.done()  # the cached job is the one we just replaced
    assert nomad.stored is not None
    store.cache.apply_event(job_event(nomad.stored))
    read = await reader
    assert read is not None and read["JobModifyIndex"] == 15
    assert nomad.calls == {"register": 1}


async def test_every_reader_waiting_for_our_write_wakes_on_its_event() -> None:
    clock = FakeClock()
    nomad = FakeNomad(job(5))
    store = store_with(job(5), nomad, clock)
    await store.register_job(job(5), enforce_index=5)
    readers = [asyncio.create_task(store.get_job("web", "default")) for _ in range(2)]
    await clock.settle()
    assert nomad.stored is not None
    store.cache.apply_event(job_event({**nomad.stored, "ModifyIndex": 12, "JobModifyIndex": 12}))
    await clock.settle()
    assert not any(r.done() for r in readers)  # a change, but not yet ours
    store.cache.apply_event(job_event(nomad.stored))
    read = await asyncio.gather(*readers)
    assert [r["JobModifyIndex"] if r else None for r in read] == [15, 15]
    assert nomad.calls == {"register": 1}


async def test_an_event_that_never_comes_costs_one_get_after_the_bounded_wait() -> None:
    clock = FakeClock()
    nomad = FakeNomad(job(5))
    store = store_with(job(5), nomad, clock)
    await store.register_job(job(5), enforce_index=5)
    reader = asyncio.create_task(store.get_job("web", "default"))
    await clock.advance(5.0)
    read = await reader
    assert read is not None and read["JobModifyIndex"] == 15
    assert nomad.calls == {"register": 1, "get": 1}
    assert await store.get_job("web", "default") == read  # and then from the cache again
    assert nomad.calls["get"] == 1


async def test_a_conflict_makes_the_next_read_a_get() -> None:
    nomad = FakeNomad(job(7))  # a user wrote 7; the cache has not seen it yet
    store = store_with(job(5), nomad, FakeClock())
    with pytest.raises(Conflict):
        await store.register_job(job(5), enforce_index=5)
    read = await store.get_job("web", "default")
    assert read is not None and read["JobModifyIndex"] == 7
    assert nomad.calls == {"register": 1, "get": 1}


async def test_a_deleted_job_reads_none_without_a_call() -> None:
    nomad = FakeNomad(None)
    store = store_with(job(5), nomad, FakeClock())
    gone = Event("Job", "JobDeregistered", "web", "default", (), 9, {"Job": job(5)})
    store.cache.apply_event(gone)
    assert await store.get_job("web", "default") is None
    assert nomad.calls == {}


async def test_before_the_first_fill_every_read_goes_to_nomad() -> None:
    nomad = FakeNomad(job(5))
    store = CachedJobs(JobCache(keep=MESH_INTEREST.job_interesting), nomad, clock=FakeClock())
    assert await store.get_job("web", "default") is not None
    assert nomad.calls == {"get": 1}


async def test_a_job_nomad_does_not_have_is_read_once() -> None:
    """E.g. a status record's key whose job was purged while no controller ran."""
    nomad = FakeNomad(None)
    store = store_with(job(5), nomad, FakeClock())
    assert await store.get_job("gone", "default") is None
    assert await store.get_job("gone", "default") is None
    assert nomad.calls == {"get": 1}
