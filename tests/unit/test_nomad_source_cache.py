"""The event source as the cache's informer: one read per job, events into the cache first,
Deployment events of tracked jobs handed over (no server: Nomad is a stand-in)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from controller.nomad.cache import JobCache
from controller.nomad.client import NomadClient
from controller.nomad.jobs import JobList, Keep, NomadJobs
from controller.nomad.source import NomadEventSource
from controller.nomad.stream import Event, EventBatch, EventStream
from crds_equivalent.jobkey import JobKey
from crds_equivalent.keys import MESH_TLS
from reconcilers.mesh.interest import MESH_INTEREST
from tests.support.cache_shapes import Kinds

WEB = JobKey("default", "web")


def job(job_id: str, index: int, meshed: bool) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Namespace": "default",
        "Meta": {MESH_TLS: "true"} if meshed else {},
        "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "app"}]}],
        "ModifyIndex": index,
        "JobModifyIndex": index,
    }


class Nomad(NomadJobs):
    """Stored jobs; counts the GETs."""

    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        super().__init__(NomadClient("http://127.0.0.1:9"))
        self.stored = jobs
        self.reads: list[str] = []

    async def list_jobs(
        self,
        namespace: str = "*",
        *,
        meta: bool = True,
        prefix: str | None = None,
        keep: Keep | None = None,
    ) -> JobList:
        stubs = [{k: j[k] for k in ("ID", "Namespace", "Meta", "ModifyIndex", "JobModifyIndex")}
                 for j in self.stored.values()]  # fmt: skip
        return JobList(stubs=stubs, index=max(j["ModifyIndex"] for j in self.stored.values()))

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        self.reads.append(job_id)
        return dict(self.stored[job_id])


def source(nomad: Nomad, got: Kinds) -> tuple[NomadEventSource, JobCache]:
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    client = NomadClient("http://127.0.0.1:9")
    src = NomadEventSource(nomad, EventStream(client), got, predicate=MESH_INTEREST, cache=cache)
    return src, cache


async def test_each_job_is_read_once_and_a_resync_reads_only_moved_jobs() -> None:
    nomad = Nomad({"web": job("web", 5, True), "plain": job("plain", 6, False)})
    got = Kinds()
    src, cache = source(nomad, got)
    await src.list_and_enqueue()
    assert sorted(nomad.reads) == ["plain", "web"]  # the flagged job too: the cache needs it
    assert cache.kept_keys() == [WEB] and got == [("job", WEB)]  # the first look is news
    await src.list_and_enqueue()
    assert sorted(nomad.reads) == ["plain", "web"]  # nothing moved: nothing read
    assert got == [("job", WEB), ("listed", WEB)]  # a resync is a summary: low priority
    nomad.stored["plain"] = job("plain", 9, False)
    await src.list_and_enqueue()
    assert sorted(nomad.reads) == ["plain", "plain", "web"]


async def test_events_reach_the_cache_and_deployments_of_tracked_jobs_the_handler() -> None:
    got = Kinds()
    src, cache = source(Nomad({"web": job("web", 5, True)}), got)
    web = job("web", 12, True)
    src.handle_batch(EventBatch(12, (Event("Job", "JobRegistered", "web", "default", (), 12,
                                           {"Job": web}),)))  # fmt: skip
    deployment = {"ID": "d1", "Namespace": "default", "JobID": "web", "Status": "successful",
                  "CreateIndex": 13, "ModifyIndex": 13}  # fmt: skip
    other = {**deployment, "ID": "d2", "JobID": "plain"}
    src.handle_batch(EventBatch(13, tuple(
        Event("Deployment", "DeploymentStatusUpdate", d["ID"], "default", (d["JobID"],), 13,
              {"Deployment": d})
        for d in (deployment, other)
    )))  # fmt: skip
    assert got == [("job", WEB), ("deployment", WEB)]
    assert cache.job(WEB) == web
    assert [d["ID"] for d in cache.deployments_of(WEB)] == ["d1"]


async def test_a_source_that_starts_sends_reads_to_nomad_until_its_first_fill() -> None:
    """A replica that becomes leader again may hold a cache as old as its last leadership."""
    got = Kinds()
    nomad = Nomad({"web": job("web", 5, True)})
    src, cache = source(nomad, got)
    cache.replace_deployments([], 5)  # as left by an earlier leadership
    assert cache.ready
    listing = asyncio.Event()

    async def slow_list(namespace: str = "*", **_: Any) -> JobList:
        await listing.wait()
        return JobList(stubs=[], index=5)

    nomad.list_jobs = slow_list  # type: ignore[method-assign]
    task = asyncio.create_task(src.run())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not cache.ready
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
