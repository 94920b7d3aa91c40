"""Which keys the event source hands its handler for Job and Allocation events (no server).

The source is given the mesh predicate, as the controller gives it; the predicate's own cases
are in test_mesh_interest.py."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.nomad.client import NomadClient
from controller.nomad.jobs import JobList, Keep, NomadJobs
from controller.nomad.source import NomadEventSource
from controller.nomad.stream import Event, EventBatch, EventStream
from controller.runtime.clock import FakeClock
from crds_equivalent.jobkey import JobKey
from crds_equivalent.keys import MESH_TLS
from reconcilers.mesh.interest import MESH_INTEREST
from tests.support.cache_shapes import Kinds


class Keys(list[JobKey]):
    """The source's event handler: records every key handed over, in order, whatever the kind
    (which queues each kind reaches is ``controller.routing``'s business, tested apart)."""

    def job_changed(self, key: JobKey) -> None:
        self.append(key)

    def job_listed(self, key: JobKey) -> None:
        self.append(key)

    def allocation_changed(self, key: JobKey) -> None:
        self.append(key)


def job(
    job_id: str,
    meta: dict[str, str] | None = None,
    group_meta: dict[str, str] | None = None,
    tasks: tuple[str, ...] = ("app",),
) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Namespace": "default",
        "Meta": meta,
        "JobModifyIndex": 7,
        "TaskGroups": [
            {"Name": "g", "Meta": group_meta, "Tasks": [{"Name": t} for t in tasks]},
        ],
    }


def job_event(index: int, doc: dict[str, Any], **payload: Any) -> Event:
    return Event(
        topic="Job",
        type="JobRegistered",
        key=doc["ID"],
        namespace="default",
        filter_keys=(),
        index=index,
        payload={"Job": doc, **payload},
    )


def alloc_event(index: int, job_id: str, namespace: str = "default") -> Event:
    return Event(
        topic="Allocation",
        type="PlanResult",
        key=f"alloc-{index}",
        namespace=namespace,
        filter_keys=(job_id, ""),
        index=index,
        payload={"Allocation": {"ID": f"alloc-{index}", "JobID": job_id}},
    )


@pytest.fixture
def source() -> tuple[NomadEventSource, list[JobKey]]:
    got = Keys()
    client = NomadClient("http://127.0.0.1:9")
    registry = CollectorRegistry()
    src = NomadEventSource(
        NomadJobs(client), EventStream(client), got, predicate=MESH_INTEREST, registry=registry
    )
    return src, got


def test_job_events_enqueue_only_meshed_or_marked_jobs(
    source: tuple[NomadEventSource, list[JobKey]],
) -> None:
    src, got = source
    src.handle_batch(EventBatch(5, (job_event(5, job("web", meta={MESH_TLS: "true"})),)))
    src.handle_batch(EventBatch(6, (job_event(6, job("batch")),)))
    src.handle_batch(EventBatch(7, (job_event(7, job("grp", group_meta={MESH_TLS: "1"})),)))
    assert got == [JobKey("default", "web"), JobKey("default", "grp")]
    assert src.metrics.last_index.collect()[0].samples[0].value == 7


def test_allocation_events_map_to_known_meshed_jobs_only(
    source: tuple[NomadEventSource, list[JobKey]],
) -> None:
    src, got = source
    src.handle_batch(EventBatch(5, (job_event(5, job("web", meta={MESH_TLS: "true"})),)))
    got.clear()
    src.handle_batch(EventBatch(6, (alloc_event(6, "web"), alloc_event(6, "batch"))))
    assert got == [JobKey("default", "web")]


def test_a_job_that_stops_being_ours_gets_one_last_look(
    source: tuple[NomadEventSource, list[JobKey]],
) -> None:
    src, got = source
    src.handle_batch(EventBatch(5, (job_event(5, job("web", meta={MESH_TLS: "true"})),)))
    src.handle_batch(EventBatch(6, (job_event(6, job("web")),)))  # uninjected, flag removed
    src.handle_batch(EventBatch(7, (job_event(7, job("web")),)))  # later updates: not ours
    src.handle_batch(EventBatch(8, (alloc_event(8, "web"),)))
    assert got == [JobKey("default", "web"), JobKey("default", "web")]
    assert JobKey("default", "web") not in src.tracked


def test_the_silence_gauge_reads_the_streams_last_line_wall_time() -> None:
    client = NomadClient("http://127.0.0.1:9")
    registry = CollectorRegistry()
    stream = EventStream(client)
    NomadEventSource(NomadJobs(client), stream, Keys(), predicate=MESH_INTEREST, registry=registry)
    name = "nomad_event_stream_last_frame_timestamp_seconds"
    assert registry.get_sample_value(name) == 0.0  # nothing read yet: silent since forever
    stream.last_line_at = FakeClock().now()
    assert registry.get_sample_value(name) == stream.last_line_at.timestamp()


def test_unwatched_namespaces_are_ignored() -> None:
    got = Keys()
    client = NomadClient("http://127.0.0.1:9")
    src = NomadEventSource(
        NomadJobs(client), EventStream(client), got, predicate=MESH_INTEREST, namespaces=["prod"]
    )
    doc = job("web", meta={MESH_TLS: "true"})
    src.handle_batch(EventBatch(5, (job_event(5, doc),)))
    prod = Event("Job", "JobRegistered", "web", "prod", (), 6, {"Job": doc | {"Namespace": "prod"}})
    src.handle_batch(EventBatch(6, (prod,)))
    assert got == [JobKey("prod", "web")]


async def test_events_that_arrive_during_a_list_win_over_it() -> None:
    got = Keys()
    client = NomadClient("http://127.0.0.1:9")
    holder: list[NomadEventSource] = []

    class ListingJobs(NomadJobs):
        async def list_jobs(
            self,
            namespace: str = "*",
            *,
            meta: bool = True,
            prefix: str | None = None,
            keep: Keep | None = None,
        ) -> JobList:
            # while Nomad answers the LIST, the stream reports two newer changes
            holder[0].handle_batch(
                EventBatch(
                    31,
                    (
                        job_event(31, job("web")),  # flag removed: no longer ours
                        job_event(31, job("new", meta={MESH_TLS: "true"})),  # created
                    ),
                )
            )
            stub = {"ID": "web", "Namespace": "default", "Meta": {MESH_TLS: "true"}}
            return JobList(stubs=[stub], index=30)

    src = NomadEventSource(ListingJobs(client), EventStream(client), got, predicate=MESH_INTEREST)
    holder.append(src)
    src.tracked.add(JobKey("default", "web"))
    assert await src.list_and_enqueue() == 30
    assert src.tracked == {JobKey("default", "new")}


async def test_periodic_resync_is_jittered_and_counted() -> None:
    client = NomadClient("http://127.0.0.1:9", retry_budget=0.0)  # stream: refused at once
    lists: list[float] = []
    clock = FakeClock()

    class FixedJobs(NomadJobs):
        async def list_jobs(
            self,
            namespace: str = "*",
            *,
            meta: bool = True,
            prefix: str | None = None,
            keep: Keep | None = None,
        ) -> JobList:
            lists.append(clock.monotonic())
            return JobList(stubs=[{"ID": "web", "Meta": {MESH_TLS: "1"}}], index=3)

    got = Keys()
    registry = CollectorRegistry()
    src = NomadEventSource(
        FixedJobs(client),
        EventStream(client, clock=clock),
        got,
        predicate=MESH_INTEREST,
        resync_interval=600.0,
        backoff_initial=10_000.0,  # keep the reconnect loop parked
        backoff_max=10_000.0,
        clock=clock,
        registry=registry,
    )
    task = asyncio.create_task(src.run())
    try:
        await asyncio.wait_for(src.synced.wait(), 5)
        assert registry.get_sample_value("nomad_event_stream_resyncs_total") == 0
        await clock.advance(540 - 1)  # earliest possible resync: 600 - 10 %
        assert registry.get_sample_value("nomad_event_stream_resyncs_total") == 0
        await clock.advance(121)  # latest: 600 + 10 %
        assert registry.get_sample_value("nomad_event_stream_resyncs_total") == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()
    assert len(lists) == 2
    assert 540 <= lists[1] - lists[0] <= 660
    assert got == [JobKey("default", "web")] * 2


def child_of(parent: dict[str, Any], child_id: str, **extra: Any) -> dict[str, Any]:
    """A child as Nomad derives it (periodic.go deriveJob / Job.Dispatch): a copy, ParentID set."""
    return {**parent, "ID": child_id, "Name": child_id, "ParentID": parent["ID"], **extra}


def test_a_childs_events_are_its_parents_instances_never_its_own_key() -> None:
    got = Kinds()
    client = NomadClient("http://127.0.0.1:9")
    src = NomadEventSource(NomadJobs(client), EventStream(client), got, predicate=MESH_INTEREST)
    parent = job("cron", meta={MESH_TLS: "true"})
    child = child_of(parent, "cron/periodic-1700000000")
    src.handle_batch(EventBatch(5, (job_event(5, parent),)))
    src.handle_batch(EventBatch(6, (job_event(6, child), alloc_event(6, child["ID"]))))
    deleted = job_event(9, child, Deleted=True)
    src.handle_batch(EventBatch(9, (deleted,)))
    cron = JobKey("default", "cron")
    assert got == [("job", cron), ("allocation", cron), ("allocation", cron), ("allocation", cron)]
    assert src.tracked == {cron}
    assert src.parents == {}  # the purged child is forgotten

    # The child of a job nobody meshes is nobody's business either.
    other = child_of(job("plain"), "plain/dispatch-1700000000-0123abcd", Dispatched=True)
    got.clear()
    src.handle_batch(EventBatch(10, (job_event(10, other), alloc_event(10, other["ID"]))))
    assert got == []


async def test_the_list_hands_over_parents_and_never_reads_children() -> None:
    got = Kinds()
    client = NomadClient("http://127.0.0.1:9")
    reads: list[str] = []
    parent = {"ID": "task", "Namespace": "default", "Meta": {MESH_TLS: "true"}, "ParentID": ""}
    children = [
        {"ID": f"task/dispatch-17000000{n}-0123abcd", "Namespace": "default", "ParentID": "task"}
        for n in range(3)
    ]

    class ListingJobs(NomadJobs):
        async def list_jobs(
            self,
            namespace: str = "*",
            *,
            meta: bool = True,
            prefix: str | None = None,
            keep: Keep | None = None,
        ) -> JobList:
            # children stubs carry their parent's meta, flagged or not: neither may count
            flagged = [{**c, "Meta": {MESH_TLS: "true"}} for c in children[:2]]
            return JobList(stubs=[parent, *flagged, children[2]], index=40)

        async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
            reads.append(job_id)
            return None

    src = NomadEventSource(ListingJobs(client), EventStream(client), got, predicate=MESH_INTEREST)
    assert await src.list_and_enqueue() == 40
    task = JobKey("default", "task")
    assert got == [("job", task)]
    assert reads == []
    assert src.tracked == {task}
    got.clear()
    src.handle_batch(EventBatch(41, (alloc_event(41, children[2]["ID"]),)))
    assert got == [("allocation", task)]
