"""Nomad shapes for the watch-fed cache's unit tests: jobs, LIST stubs, allocations,
deployments, events, and a cache after one whole fill."""

from __future__ import annotations

from typing import Any

from controller.nomad.cache import JobCache
from controller.nomad.stream import Event
from crds_equivalent.jobkey import JobKey
from reconcilers.mesh.interest import MESH_INTEREST

WEB = JobKey("default", "web")
PLAIN = JobKey("default", "plain")


class Kinds(list[tuple[str, JobKey]]):
    """A source's handler that records which kind of change each key was handed over as."""

    def job_changed(self, key: JobKey) -> None:
        self.append(("job", key))

    def job_listed(self, key: JobKey) -> None:
        self.append(("listed", key))

    def allocation_changed(self, key: JobKey) -> None:
        self.append(("allocation", key))

    def deployment_changed(self, key: JobKey) -> None:
        self.append(("deployment", key))


def job(job_id: str, *, meshed: bool = True, index: int = 5, jmi: int | None = None) -> Any:
    return {
        "ID": job_id,
        "Namespace": "default",
        "Meta": {"mesh.tls": "true"} if meshed else {"team": "x"},
        "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "app"}]}],
        "ModifyIndex": index,
        "JobModifyIndex": index if jmi is None else jmi,
        "Status": "running",
    }


def stub(doc: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keys = ("ID", "Namespace", "ModifyIndex", "JobModifyIndex", "Status", "ParentID")
    return {**{k: doc[k] for k in keys if k in doc}, **extra}


def alloc(alloc_id: str, job_id: str = "web", *, index: int = 10, **extra: Any) -> Any:
    return {
        "ID": alloc_id,
        "Namespace": "default",
        "JobID": job_id,
        "JobVersion": 1,
        "TaskGroup": "g",
        "DesiredStatus": "run",
        "ClientStatus": "running",
        "CreateIndex": index,
        "ModifyIndex": index,
        **extra,
    }


def deployment(dep_id: str, *, create: int, index: int, job_id: str = "web") -> Any:
    return {
        "ID": dep_id,
        "Namespace": "default",
        "JobID": job_id,
        "Status": "running",
        "CreateIndex": create,
        "ModifyIndex": index,
    }


def event(topic: str, payload: dict[str, Any], index: int, type_: str = "") -> Event:
    return Event(topic, type_, "k", "default", (), index, payload)


def filled(*jobs: Any) -> JobCache:
    """A cache after one whole fill of ``jobs`` (LIST, one GET each, no allocations yet)."""
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    for key in cache.apply_listing([stub(j) for j in jobs]):
        cache.apply_read(key, next(j for j in jobs if j["ID"] == key.job_id))
    cache.end_listing([JobKey("default", j["ID"]) for j in jobs], 20)
    cache.replace_allocations([], 20)
    cache.replace_deployments([], 20)
    return cache
