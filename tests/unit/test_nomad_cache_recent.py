"""What the cache holds unpacked for the jobs touched lately, and that it changes nothing else.

Jobs written or read lately keep their compact JSON (``JobCache.recent``), and the objects of
the jobs whose allocations or deployments changed lately are held parsed (``ObjectTable.hot``);
both are bounded and cooled (packed) as other jobs come. Whatever is hot or cold, a read
answers the newest object, as a fresh value a reader may change."""

from __future__ import annotations

from typing import Any

from controller.nomad.cache import RECENT_JOBS
from controller.nomad.cache_objects import HOT_JOBS, compact
from crds_equivalent.jobkey import JobKey
from tests.support.cache_shapes import WEB, alloc, deployment, event, filled, job, stub


def keys(n: int) -> list[str]:
    return [f"j{i:03d}" for i in range(n)]


def test_only_the_jobs_touched_last_are_held_undeflated_and_every_job_reads_back() -> None:
    ids = keys(RECENT_JOBS + 8)
    cache = filled(*(job(i) for i in ids))
    assert len(cache.recent) == RECENT_JOBS
    unpacked = [k.job_id for k, e in cache.jobs.items() if not e.packed]
    assert unpacked == ids[-RECENT_JOBS:]  # the rest was deflated as it cooled
    assert all(cache.job(JobKey("default", i)) == job(i) for i in ids)


def test_changing_a_read_job_changes_nothing_cached_whether_recent_or_not() -> None:
    cache = filled(job("web"), *(job(i) for i in keys(RECENT_JOBS)))
    assert WEB not in cache.recent and cache.jobs[WEB].packed
    for _ in range(2):  # the first read unpacks it, the second is served from the recent ones
        read = cache.job(WEB)
        assert isinstance(read, dict)
        read["Meta"]["mesh.tls"] = "false"
        read["TaskGroups"].clear()
    assert WEB in cache.recent
    assert cache.job(WEB) == job("web")


def test_a_newer_version_replaces_the_recent_text_and_an_uninteresting_one_drops_it() -> None:
    cache = filled(job("web"))
    assert cache.job(WEB) == job("web")
    newer = job("web", index=9)
    cache.apply_event(event("Job", {"Job": newer}, 9))
    assert cache.job(WEB) == newer
    cache.apply_event(event("Job", {"Job": job("web", meshed=False, index=10)}, 10))
    assert cache.job(WEB) is None and WEB not in cache.recent


def test_a_job_at_the_cached_modify_index_is_not_packed_again() -> None:
    cache = filled(job("web"))
    cached = cache.jobs[WEB]
    cache.invalidate(WEB)
    cache.apply_read(WEB, job("web"))  # a GET answering what the fill already brought
    assert cache.jobs[WEB] is cached and cache.job(WEB) == job("web")
    assert cache.apply_listing([stub(job("web"))]) == []


def test_a_burst_of_allocation_events_is_read_fresh_and_survives_cooling() -> None:
    cache = filled(job("web"), *(job(i) for i in keys(HOT_JOBS)))
    for index, status in ((21, "pending"), (22, "running")):
        cache.apply_event(
            event(
                "Allocation", {"Allocation": alloc("a1", index=index, ClientStatus=status)}, index
            )
        )
    assert WEB in cache.allocations.hot
    read = cache.allocations_of(WEB)
    read[0]["ClientStatus"] = "lost"
    for i in keys(HOT_JOBS):  # other jobs' bursts cool this one
        cache.apply_event(event("Allocation", {"Allocation": alloc(f"x-{i}", i)}, 30))
    assert WEB not in cache.allocations.hot and WEB in cache.allocations.by_job
    older = alloc("a1", index=21, ClientStatus="pending")
    cache.apply_event(event("Allocation", {"Allocation": older}, 23))
    assert [a["ClientStatus"] for a in cache.allocations_of(WEB)] == ["running"]
    cold = cache.allocations_of(WEB)
    cold[0]["ClientStatus"] = "lost"
    assert cache.allocations_of(WEB) == [alloc("a1", index=22, ClientStatus="running")]


def test_finished_allocations_leave_hot_and_cold_jobs_alike() -> None:
    cache = filled(job("web"), job("api"))
    for job_id, alloc_id in (("web", "a1"), ("api", "b1")):
        cache.apply_event(event("Allocation", {"Allocation": alloc(alloc_id, job_id)}, 21))
    cache.allocations.flush()  # api's objects are packed, web's too
    cache.apply_event(event("Allocation", {"Allocation": alloc("a2", index=22)}, 22))  # web hot
    for job_id, alloc_id in (("web", "a1"), ("api", "b1")):
        done = alloc(alloc_id, job_id, index=25, DesiredStatus="stop", ClientStatus="complete")
        cache.apply_event(event("Allocation", {"Allocation": done}, 25))
    assert [a["ID"] for a in cache.allocations_of(WEB)] == ["a2"]
    assert cache.allocations_of(JobKey("default", "api")) == []
    assert cache.allocations.jobs() == [WEB]


def test_deployments_read_fresh_and_capped_across_cooling() -> None:
    cache = filled(job("web"))
    for i in range(5):
        dep = deployment(f"d{i}", create=20 + i, index=20 + i)
        cache.apply_event(event("Deployment", {"Deployment": dep}, 20 + i))
        if i == 2:
            cache.flush()
    read: list[dict[str, Any]] = cache.deployments_of(WEB)
    read[0]["Status"] = "failed"
    assert [(d["ID"], d["Status"]) for d in cache.deployments_of(WEB)] == [
        ("d4", "running"),
        ("d3", "running"),
        ("d2", "running"),
    ]
    cache.flush()
    assert not cache.recent and not cache.allocations.hot and not cache.deployments.hot
    assert [d["ID"] for d in cache.deployments_of(WEB)] == ["d4", "d3", "d2"]
    assert cache.job(WEB) == job("web")


def test_changing_a_job_read_right_after_its_event_changes_nothing_cached() -> None:
    cache = filled(job("web"))
    newer = job("web", index=9)
    cache.apply_event(event("Job", {"Job": newer}, 9))
    newer["Meta"]["mesh.tls"] = "false"  # the event's own dict, changed after it was applied
    read = cache.job(WEB)
    assert isinstance(read, dict) and read == job("web", index=9)
    read["TaskGroups"][0]["Tasks"].clear()
    assert cache.job(WEB) == job("web", index=9)


def test_a_recent_job_is_held_as_its_compact_text_and_a_read_leaves_its_packed_copy_alone() -> None:
    cache = filled(job("web"), *(job(i) for i in keys(RECENT_JOBS)))
    packed = cache.jobs[WEB].job
    assert cache.jobs[WEB].packed and WEB not in cache.recent
    assert cache.job(WEB) == job("web")
    held = cache.recent.get(WEB)
    assert held is not None and held[0] is cache.jobs[WEB] and held[1] == compact(job("web"))
    cache.flush()  # the read's copy cools: nothing is deflated again
    assert cache.jobs[WEB].job is packed and cache.job(WEB) == job("web")
    newer = job("web", index=9)
    cache.apply_event(event("Job", {"Job": newer}, 9))
    assert cache.recent.get(WEB) == (cache.jobs[WEB], compact(newer))
    assert not cache.jobs[WEB].packed and cache.jobs[WEB].job == compact(newer)


def test_objects_beyond_the_packers_window_read_back_whole() -> None:
    cache = filled(job("web"))
    placed = [alloc(f"a{i:03d}", index=20 + i) for i in range(100)]  # ~20 kB of JSON
    for i, one in enumerate(placed):
        cache.apply_event(event("Allocation", {"Allocation": one}, 20 + i))
    cache.flush()
    assert WEB in cache.allocations.by_job and len(cache.allocations.by_job[WEB]) < 4096
    assert cache.allocations_of(WEB) == sorted(placed, key=lambda a: (a["CreateIndex"], a["ID"]))
