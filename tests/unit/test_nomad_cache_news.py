"""Which events are news: an event that moves nothing a reader of the filled cache sees is
applied (its ModifyIndex kept) but reconciles nothing (``UNCHANGED``, controller-runtime's
predicates); every other event still hands its job's key over."""

from __future__ import annotations

from typing import Any

from controller.nomad.cache import JobCache
from controller.nomad.cache_objects import UNCHANGED
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.nomad.source import NomadEventSource
from controller.nomad.stream import Event, EventBatch, EventStream
from reconcilers.mesh.interest import MESH_INTEREST
from tests.support.cache_shapes import WEB, Kinds, alloc, deployment, event, filled, job, stub

HEALTHY = {"Healthy": True, "Timestamp": "2026-12-02T16:48:05Z"}


def a1(index: int, **extra: Any) -> Any:
    """Allocation a1 of web, created at 21, as Nomad sends it at ``index``."""
    return alloc("a1", index=index, CreateIndex=21, **extra)


def test_an_allocation_event_that_moves_only_untrimmed_fields_is_no_news() -> None:
    cache = filled(job("web"))
    assert cache.apply_event(event("Allocation", {"Allocation": a1(21)}, 21)) == WEB
    health = a1(22, DeploymentStatus=HEALTHY)  # not a field the cache keeps
    assert cache.apply_event(event("Allocation", {"Allocation": health}, 22)) is UNCHANGED
    assert cache.allocations_of(WEB)[0]["ModifyIndex"] == 22  # still applied: ordering holds
    failed = a1(23, ClientStatus="failed")
    assert cache.apply_event(event("Allocation", {"Allocation": failed}, 23)) == WEB
    older = a1(20, ClientStatus="pending")
    assert cache.apply_event(event("Allocation", {"Allocation": older}, 24)) is UNCHANGED
    assert cache.allocations_of(WEB)[0]["ClientStatus"] == "failed"


def test_a_finished_allocation_is_news_only_when_the_cache_held_it() -> None:
    cache = filled(job("web"))
    cache.apply_event(event("Allocation", {"Allocation": a1(21)}, 21))
    done = a1(22, DesiredStatus="stop", ClientStatus="complete")
    assert cache.apply_event(event("Allocation", {"Allocation": done}, 22)) == WEB
    assert cache.apply_event(event("Allocation", {"Allocation": done}, 23)) is UNCHANGED


def test_a_deployment_event_that_moves_nothing_kept_is_no_news() -> None:
    cache = filled(job("web"))
    first = deployment("d1", create=21, index=21)
    assert cache.apply_event(event("Deployment", {"Deployment": first}, 21)) == WEB
    same = {**deployment("d1", create=21, index=22), "EvalPriority": 50}
    assert cache.apply_event(event("Deployment", {"Deployment": same}, 22)) is UNCHANGED
    done = {**deployment("d1", create=21, index=23), "Status": "successful"}
    assert cache.apply_event(event("Deployment", {"Deployment": done}, 23)) == WEB


def test_a_job_event_is_news_even_at_the_cached_spec() -> None:
    """The event that marks a version stable moves only ``Stable``, but it is how the mesh
    reconciler hears that the rollout it waits on succeeded (skipping it left a fresh job
    at Injected in tests/e2e/test_phase_sequence.py)."""
    cache = filled(job("web", index=5))
    stable = {**job("web", index=30, jmi=5), "Stable": True}
    assert cache.apply_event(event("Job", {"Job": stable}, 30, "DeploymentStatusUpdate")) == WEB
    assert cache.job(WEB) == stable
    dead = {**job("web", index=32, jmi=5), "Status": "dead"}
    assert cache.apply_event(event("Job", {"Job": dead}, 32)) == WEB


def test_before_the_first_fill_every_event_is_news() -> None:
    """Reads go to Nomad until then, so the cache cannot say what a reader would see."""
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    web = job("web", index=5)
    for key in cache.apply_listing([stub(web)]):
        cache.apply_read(key, web)
    again = {**job("web", index=6, jmi=5), "Stable": True}
    assert cache.apply_event(event("Job", {"Job": again}, 6)) == WEB


def test_the_source_hands_over_only_news() -> None:
    got = Kinds()
    client = NomadClient("http://127.0.0.1:9")
    cache = filled(job("web", index=5))
    src = NomadEventSource(
        NomadJobs(client), EventStream(client), got, predicate=MESH_INTEREST, cache=cache
    )
    src.tracked = {WEB}

    def ev(topic: str, payload: dict[str, object], index: int) -> Event:
        key = "web" if topic == "Job" else "a1"
        return Event(topic, "", key, "default", ("web",), index, payload)

    src.handle_batch(EventBatch(21, (ev("Allocation", {"Allocation": a1(21)}, 21),)))
    health = a1(22, DeploymentStatus=HEALTHY)
    src.handle_batch(EventBatch(22, (ev("Allocation", {"Allocation": health}, 22),)))
    stable = {**job("web", index=23, jmi=5), "Stable": True}
    src.handle_batch(EventBatch(23, (ev("Job", {"Job": stable}, 23),)))
    assert got == [("allocation", WEB), ("job", WEB)]  # the health-only event: nothing
    assert WEB in src.tracked
