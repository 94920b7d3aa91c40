"""Our Nomad adapter against the Nomad twin: jobs with EnforceIndex, Variables CAS, the leader
lock, and the event stream resuming across dropped connections without duplicates or gaps."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.nomad.client import NomadClient
from controller.nomad.errors import Conflict, PermissionDenied
from controller.nomad.jobs import NomadJobs
from controller.nomad.lock import NomadVariableLock
from controller.nomad.source import STUB_FIELDS, NomadEventSource, listed_stub
from controller.nomad.stream import EventStream
from controller.nomad.variables import NomadVariables
from crds_equivalent.jobkey import JobKey
from crds_equivalent.keys import INJECTED_GROUP_META, MESH_TLS, SIDECAR_TASK, VAR_LEADER
from devstack.nomad.server import NomadTwin, start_nomad_twin
from reconcilers.mesh.interest import MESH_INTEREST
from tests.support.nomad_fixtures import job_spec
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


async def test_register_list_get_with_enforce_index(nomad: NomadClient) -> None:
    jobs = NomadJobs(nomad)
    created = await jobs.register_job(job_spec("web", meta={"mesh.tls": "true"}), enforce_index=0)
    first_index = created["JobModifyIndex"]
    assert first_index > 0
    with pytest.raises(Conflict):  # "only if absent", and it exists now
        await jobs.register_job(job_spec("web"), enforce_index=0)

    job = await jobs.get_job("web", "default")
    assert job is not None
    assert job["JobModifyIndex"] == first_index
    assert job["Meta"] == {"mesh.tls": "true"}
    assert await jobs.get_job("nope", "default") is None

    listing = await jobs.list_jobs("*")
    (stub,) = listing.stubs
    assert stub["ID"] == "web"
    assert stub["Meta"] == {"mesh.tls": "true"}
    assert listing.index >= first_index

    job["Meta"]["team"] = "a"
    updated = await jobs.register_job(job, enforce_index=first_index)
    assert updated["JobModifyIndex"] > first_index
    job["Meta"]["team"] = "b"
    with pytest.raises(Conflict):  # a stale writer is fenced off
        await jobs.register_job(job, enforce_index=first_index)
    stored = await jobs.get_job("web", "default")
    assert stored is not None
    assert stored["Meta"]["team"] == "a"
    versions = await jobs.job_versions("web", "default")
    assert [v["Version"] for v in versions] == [1, 0]


async def test_a_list_keeps_what_keep_makes_of_each_stub_on_every_page(
    nomad: NomadClient,
) -> None:
    jobs = NomadJobs(nomad, per_page=2)
    for name in ("a", "b", "c", "d", "e"):
        await jobs.register_job(job_spec(name, meta={MESH_TLS: name}), enforce_index=0)
    # the twin's scheduler is still placing the jobs, and a placement moves the index and the
    # stubs' summaries between two LISTs: compare a pair taken while nothing moved
    for _ in range(50):
        whole = await jobs.list_jobs("*")
        cut = await jobs.list_jobs("*", keep=listed_stub)
        if cut.index == whole.index:
            break
        await asyncio.sleep(0.1)
    assert "JobSummary" in whole.stubs[0]
    assert cut.index == whole.index
    assert cut.stubs == [{k: s[k] for k in STUB_FIELDS if k in s} for s in whole.stubs]
    assert [(s["ID"], s["Meta"]) for s in cut.stubs] == [
        (n, {MESH_TLS: n}) for n in ("a", "b", "c", "d", "e")
    ]
    assert all(set(s) <= set(STUB_FIELDS) for s in cut.stubs)

    odd = await jobs.list_jobs("*", keep=lambda s: s if s["ID"] in "ace" else None)
    assert [s["ID"] for s in odd.stubs] == ["a", "c", "e"]


async def test_allocation_reads(nomad: NomadClient) -> None:
    jobs = NomadJobs(nomad)
    await jobs.register_job(job_spec("api"), enforce_index=0)
    allocs = []
    for _ in range(100):
        allocs = await jobs.job_allocations("api", "default")
        if allocs:
            break
        await asyncio.sleep(0.02)
    assert allocs, "the twin placed no allocation"
    alloc = await jobs.read_allocation(allocs[0]["ID"], "default")
    assert alloc is not None
    assert alloc["JobID"] == "api"
    assert await jobs.read_allocation("00000000-0000-0000-0000-000000000000", "default") is None
    assert await jobs.job_allocations("nope", "default") == []


async def test_variables_cas(nomad: NomadClient) -> None:
    variables = NomadVariables(nomad)
    created = await variables.put("mesh-controller/test/a", {"k": "1"}, cas=0)
    assert created.modify_index > 0
    with pytest.raises(Conflict) as info:
        await variables.put("mesh-controller/test/a", {"k": "2"}, cas=0)
    assert info.value.current is not None
    assert info.value.current["ModifyIndex"] == created.modify_index
    assert await variables.cas_put("mesh-controller/test/a", {"k": "2"}, cas=1) is None
    updated = await variables.put("mesh-controller/test/a", {"k": "2"}, cas=created.modify_index)
    read = await variables.get("mesh-controller/test/a")
    assert read is not None
    assert read.items == {"k": "2"}
    assert read.modify_index == updated.modify_index
    await variables.put("mesh-controller/test/b", {"k": "x"})
    listed = await variables.list_prefix("mesh-controller/test/")
    assert sorted(v.path for v in listed) == ["mesh-controller/test/a", "mesh-controller/test/b"]
    assert not await variables.cas_delete("mesh-controller/test/a", cas=created.modify_index)
    assert await variables.cas_delete("mesh-controller/test/a", cas=updated.modify_index)
    assert await variables.get("mesh-controller/test/a") is None


async def test_leader_lock_acquire_renew_release_and_a_second_holder(nomad: NomadClient) -> None:
    one = NomadVariableLock(nomad, path=VAR_LEADER, identity="one", version="0.1.0")
    two = NomadVariableLock(nomad, path=VAR_LEADER, identity="two")
    assert await one.acquire()
    assert one.granted_ttl == 15.0  # sent as "15s", returned as a Go duration string
    assert not await two.acquire()
    assert await one.renew()
    assert await one.acquire()  # already ours: acquiring again just renews
    holder = await one.holder()
    assert holder is not None
    assert holder["identity"] == "one"
    assert holder["version"] == "0.1.0"
    assert {"host", "pid", "since"} <= set(holder)
    assert not await two.renew()  # never held it

    await one.release()
    assert not await one.renew()
    assert await two.acquire()
    assert not await one.acquire()
    await two.release()
    await two.release()  # idempotent


async def test_stream_resumes_after_dropped_connections_without_duplicates_or_gaps(
    nomad_twin: NomadTwin, nomad: NomadClient
) -> None:
    jobs = NomadJobs(nomad)
    for i in range(5):
        await jobs.register_job(job_spec(f"job{i}"), enforce_index=0)
    sentinel = await jobs.register_job(job_spec("sentinel"), enforce_index=0)
    target = sentinel["JobModifyIndex"]

    reference = await _read_until(EventStream(nomad), target)
    assert target in reference

    nomad_twin.faults.stream_drop_after = 2
    stream = EventStream(nomad)
    seen: list[int] = []
    connections = 0
    while stream.last_index < target and connections < 50:
        connections += 1
        async with contextlib.aclosing(stream.connect(0)) as batches:
            async for batch in batches:
                seen.append(batch.index)
                if batch.index >= target:
                    break
    assert connections > 2
    seen = [i for i in seen if i <= target]
    assert seen == sorted(set(seen))  # no duplicates, in order
    assert seen == reference  # no gaps


async def _read_until(stream: EventStream, target: int) -> list[int]:
    out: list[int] = []
    async with contextlib.aclosing(stream.connect(0)) as batches:
        async for batch in batches:
            out.append(batch.index)
            if batch.index >= target:
                break
    return [i for i in out if i <= target]


class Keys(list[JobKey]):
    """The source's event handler: records every key handed over, in order, whatever the kind
    (which queues each kind reaches is ``controller.routing``'s business, tested apart)."""

    def job_changed(self, key: JobKey) -> None:
        self.append(key)

    def job_listed(self, key: JobKey) -> None:
        self.append(key)

    def allocation_changed(self, key: JobKey) -> None:
        self.append(key)


async def test_source_enqueues_only_meshed_or_marked_jobs_and_survives_drops(
    nomad_twin: NomadTwin, nomad: NomadClient
) -> None:
    jobs = NomadJobs(nomad)
    for spec in (
        job_spec("meshed", meta={MESH_TLS: "true"}),
        job_spec("group-meshed", group_meta={MESH_TLS: "1"}),  # invisible in the LIST stub
        job_spec("marked", group_meta={INJECTED_GROUP_META: "v1:0123456789abcdef"}),
        job_spec("sidecar", tasks=("app", SIDECAR_TASK)),
        job_spec("invalid", meta={MESH_TLS: "maybe"}),
        job_spec("plain", meta={"team": "x"}),
        job_spec("off", meta={MESH_TLS: "false"}),
    ):
        await jobs.register_job(spec, enforce_index=0)

    got = Keys()
    registry = CollectorRegistry()
    source = NomadEventSource(
        jobs,
        EventStream(nomad),
        got,
        predicate=MESH_INTEREST,
        registry=registry,
        backoff_initial=0.01,
    )
    expected = {"meshed", "group-meshed", "marked", "sidecar", "invalid"}
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.synced.wait(), 10)
        assert {k.job_id for k in got} == expected
        assert source.tracked == {JobKey("default", j) for j in expected}

        got.clear()
        nomad_twin.faults.stream_drop_after = 1  # every connection dies after one frame
        await jobs.register_job(job_spec("late", group_meta={MESH_TLS: "true"}), enforce_index=0)
        await jobs.register_job(job_spec("late-plain"), enforce_index=0)
        await eventually(
            lambda: JobKey("default", "late") in got,
            within=5.0,
            every=0.02,
            what="late meshed job enqueued",
        )
        await eventually(
            lambda: (registry.get_sample_value("nomad_event_stream_reconnects_total") or 0) > 0,
            within=5.0,
            every=0.02,
            what="a reconnect",
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    enqueued = {k.job_id for k in got}
    assert "late-plain" not in enqueued
    assert "plain" not in enqueued and "off" not in enqueued
    assert enqueued <= expected | {"late"}
    assert source.last_index == registry.get_sample_value("nomad_event_stream_last_index")


async def test_source_lists_known_keys_from_status_records(nomad: NomadClient) -> None:
    """A job we reconciled before (it has a status record) is looked at again even if it is
    gone now, so its record gets cleaned up."""
    got = Keys()

    async def known() -> list[tuple[str, str]]:
        return [("default", "purged-while-we-were-down")]

    source = NomadEventSource(
        NomadJobs(nomad), EventStream(nomad), got, predicate=MESH_INTEREST, known_keys=known
    )
    await source.list_and_enqueue()
    assert got == [JobKey("default", "purged-while-we-were-down")]


class CountingJobs(NomadJobs):
    """Counts full-job reads, to check the source's read cache (a cost property)."""

    reads = 0

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        self.reads += 1
        return await super().get_job(job_id, namespace)


async def test_resync_reads_each_unflagged_job_once_per_version(nomad: NomadClient) -> None:
    jobs = CountingJobs(nomad)
    await jobs.register_job(job_spec("meshed", meta={MESH_TLS: "true"}), enforce_index=0)
    await jobs.register_job(job_spec("group", group_meta={MESH_TLS: "true"}), enforce_index=0)
    await jobs.register_job(job_spec("plain"), enforce_index=0)
    got = Keys()
    source = NomadEventSource(jobs, EventStream(nomad), got, predicate=MESH_INTEREST)
    await source.list_and_enqueue()
    assert jobs.reads == 2  # "group" and "plain": their stubs cannot tell
    await source.list_and_enqueue()
    assert jobs.reads == 2
    assert [k.job_id for k in got] == ["group", "meshed", "group", "meshed"]

    plain = await jobs.get_job("plain", "default")
    assert plain is not None
    plain["TaskGroups"][0]["Meta"] = {MESH_TLS: "true"}
    await jobs.register_job(plain, enforce_index=plain["JobModifyIndex"])
    got.clear()
    await source.list_and_enqueue()
    assert jobs.reads == 4  # only the changed job is read again
    assert [k.job_id for k in got] == ["group", "meshed", "plain"]


async def test_without_inspection_the_stub_net_is_any_mesh_key(nomad: NomadClient) -> None:
    jobs = CountingJobs(nomad)
    await jobs.register_job(job_spec("ports-only", meta={"mesh.tls.ports": "x"}), enforce_index=0)
    await jobs.register_job(job_spec("group", group_meta={MESH_TLS: "true"}), enforce_index=0)
    got = Keys()
    source = NomadEventSource(
        jobs, EventStream(nomad), got, predicate=MESH_INTEREST, inspect_unflagged=False
    )
    await source.list_and_enqueue()
    assert [k.job_id for k in got] == ["ports-only"]
    assert jobs.reads == 0


async def test_acl_refusals_are_permission_denied() -> None:
    twin = await start_nomad_twin(nodes=1, acl=True)
    try:
        async with NomadClient(twin.url, token="not-a-real-token") as bad:
            with pytest.raises(PermissionDenied):
                await NomadJobs(bad).list_jobs("*")
            with pytest.raises(PermissionDenied):
                await _read_until(EventStream(bad), 1)
        async with NomadClient(twin.url, token=twin.management_token) as good:
            await NomadJobs(good).register_job(job_spec("web"), enforce_index=0)
            assert [s["ID"] for s in (await NomadJobs(good).list_jobs("*")).stubs] == ["web"]
    finally:
        await twin.stop()


class BusyClusterJobs(NomadJobs):
    """Per-job reads on a busy cluster: while the first read is in flight, a meshed job is
    registered and then enough other writes happen to roll Nomad's event buffer past it."""

    def __init__(self, client: NomadClient, busy: int) -> None:
        super().__init__(client)
        self.busy = busy
        self.lists_when_registered: int | None = None
        self.source: NomadEventSource | None = None

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        if self.busy:
            busy, self.busy = self.busy, 0
            assert self.source is not None
            self.lists_when_registered = self.source.lists
            await self.register_job(
                job_spec("arrived-during-reads", group_meta={MESH_TLS: "true"}), enforce_index=0
            )
            for i in range(busy):  # paced as a cluster is, so a live subscriber keeps up
                await asyncio.sleep(0.05)
                await self.register_job(job_spec(f"noise{i}"), enforce_index=0)
        return await super().get_job(job_id, namespace)


BUFFER = 8  # more than one registration publishes (job, evaluation, allocations), so a
# live subscriber keeps up; far fewer than the writes made during the reads


async def test_an_event_during_the_per_job_reads_is_not_lost_to_a_small_buffer(
    make_nomad_twin: NomadTwinFactory,
) -> None:
    """Audit 8: the stream is subscribed at the LIST index before the unflagged jobs are read,
    so a job meshed (in group meta: its LIST stub cannot tell) while they are read arrives as
    an event, although the buffer (8 indexes) forgot it long before the reads ended. Subscribed
    after the reads, the stream would start at the oldest buffered frame and the job would wait
    for the next resync (an hour away here)."""
    twin = await make_nomad_twin(nodes=1, event_buffer_size=BUFFER)
    client = NomadClient(twin.url, retry_budget=2.0)
    try:
        jobs = BusyClusterJobs(client, busy=3 * BUFFER)
        for i in range(4):
            await jobs.register_job(job_spec(f"unflagged{i}"), enforce_index=0)
        got = Keys()
        registry = CollectorRegistry()
        source = NomadEventSource(
            jobs,
            EventStream(client),
            got,
            predicate=MESH_INTEREST,
            resync_interval=3600.0,
            registry=registry,
        )
        jobs.source = source
        task = asyncio.create_task(source.run())
        try:
            late = JobKey("default", "arrived-during-reads")
            await eventually(lambda: late in got, within=10.0, every=0.02, what="late job seen")
            await asyncio.wait_for(source.synced.wait(), 10)
            assert jobs.lists_when_registered == 0  # registered during the first LIST's reads
            assert source.lists == 1  # seen from the stream, not from a second LIST
            assert registry.get_sample_value("nomad_event_stream_reconnects_total") == 0
            assert twin.state.broker.size == BUFFER
            # the buffer rolled past the late job's frames before the reads ended
            assert (
                twin.state.broker._buf[0].index
                > twin.state.jobs[("default", late.job_id)]["CreateIndex"]
            )
            assert late in source.tracked
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await client.close()
