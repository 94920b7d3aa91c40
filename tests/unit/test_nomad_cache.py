"""The watch-fed job cache as pure bookkeeping: fills racing events, deletes, children, trimming.

The cache is given the mesh predicate, as the controller gives it; what "kept" means for each
job shape is test_mesh_interest.py's business."""

from __future__ import annotations

from controller.nomad.cache import JobCache
from controller.nomad.cache_objects import ALLOC_FIELDS, GONE, trim_allocation
from crds_equivalent.jobkey import JobKey
from reconcilers.mesh.interest import MESH_INTEREST
from tests.support.cache_shapes import PLAIN, WEB, alloc, deployment, event, filled, job, stub


def test_only_interesting_jobs_are_kept_raw_and_the_same_object_is_returned() -> None:
    web, plain = job("web"), job("plain", meshed=False)
    cache = filled(web, plain)
    assert cache.job(WEB) == web  # every field, parsed afresh
    assert cache.job(WEB) is not cache.job(WEB)  # a reader cannot change the cache
    assert cache.job(PLAIN) is None  # not kept: a read answers
    assert cache.verdict(PLAIN, 5) is False
    assert cache.kept_keys() == [WEB]


def test_a_second_listing_owes_a_read_only_for_a_moved_job_modify_index() -> None:
    web, api = job("web"), job("api")
    cache = filled(web, api)
    moved = job("api", index=9)
    assert cache.apply_listing([stub(web), stub(moved)]) == [JobKey("default", "api")]
    # a status-only change (ModifyIndex moved, JobModifyIndex did not) is not read
    assert cache.apply_listing([stub(web, ModifyIndex=11), stub(moved)]) == [
        JobKey("default", "api")
    ]


def test_an_event_during_a_fill_wins_over_the_older_read() -> None:
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    old = job("web", index=5)
    assert cache.apply_listing([stub(old)]) == [WEB]
    newer = job("web", index=7)
    cache.apply_event(event("Job", {"Job": newer}, 7))
    cache.apply_read(WEB, old)  # the GET was answered before the event's write
    cache.end_listing([WEB], 6)
    assert cache.job(WEB) == newer


def test_a_delete_during_a_fill_is_not_undone_by_the_listing_or_the_read() -> None:
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    web = job("web", index=5)
    cache.apply_listing([stub(web)])
    cache.apply_event(event("Job", {"Job": web, "Deleted": True}, 8, "JobDeregistered"))
    cache.apply_read(WEB, web)
    assert cache.job(WEB) is GONE
    assert cache.apply_listing([stub(web)]) == []  # a LIST older than the delete
    cache.end_listing([WEB], 6)
    assert cache.job(WEB) is GONE


def test_a_listing_forgets_absent_jobs_but_keeps_those_created_after_it() -> None:
    web, api = job("web", index=5), job("api", index=6)
    cache = filled(web, api)
    created = job("new", index=30)
    cache.apply_event(event("Job", {"Job": created}, 30))
    cache.apply_listing([stub(web)])
    cache.end_listing([WEB], 25)
    assert cache.kept_keys() == [JobKey("default", "new"), WEB]


def test_allocations_newer_from_events_survive_an_older_listing() -> None:
    cache = filled(job("web"))
    cache.apply_event(event("Allocation", {"Allocation": alloc("a1", index=40)}, 40))
    cache.apply_event(event("Allocation", {"Allocation": alloc("a3", index=41)}, 41))
    listed = [alloc("a1", index=30, ClientStatus="pending"), alloc("a2", index=31)]
    cache.replace_allocations(listed, 35)  # a3 is newer than the LIST: kept
    by_id = {a["ID"]: a for a in cache.allocations_of(WEB)}
    assert sorted(by_id) == ["a1", "a2", "a3"]
    assert by_id["a1"]["ClientStatus"] == "running"
    cache.replace_allocations([alloc("a1", index=40)], 50)  # a2, a3 purged by Nomad's GC
    assert [a["ID"] for a in cache.allocations_of(WEB)] == ["a1"]


def test_allocations_of_jobs_not_kept_are_not_held() -> None:
    cache = filled(job("web"), job("plain", meshed=False))
    cache.replace_allocations([alloc("a1"), alloc("p1", "plain"), alloc("x1", "unknown")], 20)
    assert cache.apply_event(event("Allocation", {"Allocation": alloc("p2", "plain")}, 21)) is None
    assert len(cache.allocations) == 1


def test_listed_stubs_are_trimmed_as_their_page_arrives_and_the_rest_dropped() -> None:
    """The fill keeps of each LIST stub only what replace_allocations would keep, page by page,
    so a cluster's worth of stubs is never held at once; the result fills the cache the same."""
    cache = filled(job("web"), job("plain", meshed=False))
    done = alloc("a0", ClientStatus="complete", DesiredStatus="stop")
    page = [alloc("a1", NodeName="n1"), alloc("p1", "plain"), alloc("x1", "unknown"), done]
    kept = [k for a in page if (k := cache.listed_allocation(a)) is not None]
    assert [a["ID"] for a in kept] == ["a1"] and "NodeName" not in kept[0]
    cache.replace_allocations(kept, 20)
    assert [a["ID"] for a in cache.allocations_of(JobKey("default", "web"))] == ["a1"]
    listed = cache.listed_deployment(deployment("d1", create=3, index=3))
    assert listed is not None and listed["ID"] == "d1"
    assert cache.listed_deployment(deployment("d2", create=3, index=3, job_id="plain")) is None


def test_a_staged_listing_fills_the_cache_as_the_whole_listing_does() -> None:
    """The fill stages each page's stubs as they arrive (compact, not parsed) and replaces
    from them at the end: the same cache as ``replace_allocations``/``_deployments`` with
    the whole listing, events newer than the LIST included; an unfinished LIST leaves none."""
    page = [alloc("a1", index=30, ClientStatus="pending"), alloc("a2", index=31)]
    page += [alloc("p1", "plain"), alloc("a0", ClientStatus="complete", DesiredStatus="stop")]
    deps = [
        deployment("d1", create=3, index=3),
        deployment("d2", create=3, index=3, job_id="plain"),
    ]
    whole, staged = (filled(job("web"), job("plain", meshed=False)) for _ in range(2))
    for cache in (whole, staged):
        cache.apply_event(event("Allocation", {"Allocation": alloc("a1", index=40)}, 40))
        cache.apply_event(event("Allocation", {"Allocation": alloc("a3", index=41)}, 41))
    whole.replace_allocations(page, 35)
    whole.replace_deployments(deps, 35)
    staged.stage_allocation(alloc("a9"))
    staged.unstage()  # a LIST that failed: nothing of it is applied later
    for a in page:
        staged.stage_allocation(a)
    staged.replace_staged_allocations(35)
    for d in deps:
        staged.stage_deployment(d)
    staged.replace_staged_deployments(35)
    for key in (WEB, JobKey("default", "plain")):
        assert staged.allocations_of(key) == whole.allocations_of(key)
        assert staged.deployments_of(key) == whole.deployments_of(key)
    assert sorted(a["ID"] for a in staged.allocations_of(WEB)) == ["a1", "a2", "a3"]
    assert staged.ready and staged.allocations.staged == {} == staged.deployments.staged


def test_allocations_are_trimmed_to_the_fields_read() -> None:
    raw = alloc(
        "a1",
        AllocatedResources={"Shared": {"Ports": [{"Label": "http", "Value": 1}]}},
        NodeName="n1",
        TaskStates={
            "mesh-tls-proxy": {
                "State": "pending",
                "Failed": False,
                "Restarts": 2,
                "Events": [
                    {
                        "Type": "Template",
                        "Time": 7,
                        "Message": "m",
                        "DisplayMessage": "Missing: vault.pki",
                        "FailsTask": False,
                        "Details": {"big": "x" * 500},
                    }
                ],
            }
        },
    )
    trimmed = trim_allocation(raw)
    assert set(trimmed) == {*ALLOC_FIELDS, "TaskStates"}
    state = trimmed["TaskStates"]["mesh-tls-proxy"]
    assert state == {
        "State": "pending",
        "Events": [
            {
                "Type": "Template",
                "Time": 7,
                "Message": "m",
                "DisplayMessage": "Missing: vault.pki",
                "FailsTask": False,
            }
        ],
    }


def test_a_running_tasks_events_and_a_stopped_allocations_states_are_not_kept() -> None:
    running = {"app": {"State": "running", "Events": [{"Type": "Started", "Time": 1}]}}
    assert trim_allocation(alloc("a1", TaskStates=running))["TaskStates"] == {
        "app": {"State": "running"}
    }
    stopping = alloc("a2", DesiredStatus="stop", TaskStates=running)
    assert "TaskStates" not in trim_allocation(stopping)


def test_an_allocation_finished_on_both_sides_is_forgotten() -> None:
    cache = filled(job("web"))
    cache.apply_event(event("Allocation", {"Allocation": alloc("a1", index=21)}, 21))
    done = alloc("a1", index=22, DesiredStatus="stop", ClientStatus="complete")
    cache.apply_event(event("Allocation", {"Allocation": done}, 22))
    assert cache.allocations_of(WEB) == []
    cache.replace_allocations([done, alloc("a2", index=23)], 23)
    assert [a["ID"] for a in cache.allocations_of(WEB)] == ["a2"]


def test_only_the_newest_deployments_of_a_job_are_kept() -> None:
    cache = filled(job("web"))
    listed = [deployment(f"d{i}", create=10 + i, index=10 + i) for i in range(5)]
    cache.replace_deployments(listed, 20)
    assert [d["ID"] for d in cache.deployments_of(WEB)] == ["d4", "d3", "d2"]
    newer = deployment("d5", create=30, index=30)
    cache.apply_event(event("Deployment", {"Deployment": newer}, 30))
    assert [d["ID"] for d in cache.deployments_of(WEB)] == ["d5", "d4", "d3"]


def test_a_childs_allocations_are_its_parents_while_the_child_lives() -> None:
    parent = job("cron")
    cache = filled(parent)
    alive = {**job("cron/periodic-1", meshed=False), "ParentID": "cron"}
    dead = {**job("cron/periodic-0", meshed=False), "ParentID": "cron", "Status": "dead"}
    assert cache.apply_listing([stub(parent), stub(alive), stub(dead)]) == []  # never read
    cache.replace_allocations([alloc("c1", "cron/periodic-1"), alloc("c0", "cron/periodic-0")], 30)
    assert [a["ID"] for a in cache.child_allocations(JobKey("default", "cron"))] == ["c1"]
    purged = event("Job", {"Job": alive, "Deleted": True}, 31, "JobDeregistered")
    cache.apply_event(purged)
    assert cache.child_allocations(JobKey("default", "cron")) == []


def test_deployments_latest_by_create_index_and_forgotten_with_the_job() -> None:
    cache = filled(job("web"))
    cache.replace_deployments([deployment("d1", create=10, index=12)], 20)
    cache.apply_event(
        event("Deployment", {"Deployment": deployment("d2", create=30, index=30)}, 30)
    )
    assert [d["ID"] for d in cache.deployments_of(WEB)] == ["d2", "d1"]
    cache.apply_event(event("Allocation", {"Allocation": alloc("a1", index=31)}, 31))
    cache.apply_event(event("Job", {"Job": job("web"), "Deleted": True}, 40, "JobDeregistered"))
    assert cache.deployments_of(WEB) == [] and cache.allocations_of(WEB) == []


def test_a_job_that_stops_being_interesting_drops_its_objects() -> None:
    cache = filled(job("web"))
    cache.apply_event(event("Allocation", {"Allocation": alloc("a1", index=21)}, 21))
    cache.apply_event(event("Job", {"Job": job("web", meshed=False, index=22)}, 22))
    assert cache.job(WEB) is None and cache.allocations_of(WEB) == []


def test_reads_of_our_own_write_wait_for_its_event() -> None:
    cache = filled(job("web", index=5))
    cache.expect(WEB, 9)
    assert cache.job(WEB) is None  # behind our register: a read must not plan from it
    unrelated = job("web", index=7)  # e.g. a status change before our register's event
    cache.apply_event(event("Job", {"Job": unrelated}, 7))
    assert cache.job(WEB) is None
    ours = job("web", index=9)
    cache.apply_event(event("Job", {"Job": ours}, 9))
    assert cache.job(WEB) == ours and not cache.expected


def test_a_conflict_invalidates_until_a_read_or_a_newer_event() -> None:
    cache = filled(job("web", index=5))
    cache.invalidate(WEB)
    assert cache.job(WEB) is None
    fresh = job("web", index=8)
    cache.apply_read(WEB, fresh)
    assert cache.job(WEB) == fresh
    cache.invalidate(WEB)
    newer = job("web", index=11)
    cache.apply_event(event("Job", {"Job": newer}, 11))
    assert cache.job(WEB) == newer


def test_a_purge_is_told_from_a_stop_by_the_payloads_index_before_nomad_2() -> None:
    """Nomad 1.10 sends the job as it was before the purge; a stop writes the job anew."""
    cache = filled(job("web", index=5), job("api", index=6))
    stopped = {**job("web", index=30), "Stop": True}
    cache.apply_event(event("Job", {"Job": stopped}, 30, "JobDeregistered"))
    assert cache.job(WEB) == stopped
    before = job("api", index=6)
    cache.apply_event(event("Job", {"Job": before}, 31, "JobDeregistered"))
    assert cache.job(JobKey("default", "api")) is GONE


def test_a_read_answered_404_is_a_tombstone_until_the_job_comes_back() -> None:
    cache = filled(job("web", index=5))
    cache.apply_read(WEB, None, at=12)
    assert cache.job(WEB) is GONE
    back = job("web", index=14)
    cache.apply_event(event("Job", {"Job": back}, 14))
    assert cache.job(WEB) == back
