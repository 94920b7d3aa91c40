"""The cache's tables of allocations and deployments, and what of an allocation is kept.

An ``ObjectTable`` holds objects by ID with an index by job, and replaces one only with one at
least as new (``ModifyIndex``: Nomad bumps it on every change of an allocation, client updates
included — ``nestedUpdateAllocFromClient`` — and of a deployment). ``replace`` applies a LIST
taken at a raft index: listed objects are put by the same rule, and cached objects absent from
it are dropped only when no newer than the LIST (an event since then knows better).

Allocations are trimmed (``trim_allocation``) to what the controller reads of them, so the
cache holds a few hundred bytes per allocation instead of the stub's kilobytes. The inventory
(grep over ``reconcilers/`` and ``controller/``): ``instances.matching.running_allocations``
(ID, TaskGroup, ClientStatus, DesiredStatus), ``mesh.rollout`` (JobVersion, TaskGroup,
DesiredStatus, ClientStatus, and of ``TaskStates[task]``: State and the Events' Type, Time,
Message, DisplayMessage, FailsTask); the cache itself (Namespace, JobID, ModifyIndex,
CreateIndex). Instance addresses come from the service catalogs, never from the allocation,
so ``AllocatedResources`` is neither asked for (the LIST runs without ``resources=true``) nor
kept. A new reader of another field adds it to ``ALLOC_FIELDS`` (a unit test pins the list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from crds_equivalent.jobkey import JobKey

ALLOC_FIELDS = (
    "ID",
    "Namespace",
    "JobID",
    "JobVersion",
    "TaskGroup",
    "DesiredStatus",
    "ClientStatus",
    "DeploymentID",
    "CreateIndex",
    "ModifyIndex",
)
TASK_STATE_FIELDS = ("State",)
TASK_EVENT_FIELDS = ("Type", "Time", "Message", "DisplayMessage", "FailsTask")


def _trim_state(state: Any) -> Any:
    if not isinstance(state, Mapping):
        return state
    out = {k: state[k] for k in TASK_STATE_FIELDS if k in state}
    events = state.get("Events")
    if isinstance(events, list):
        out["Events"] = [
            {k: e[k] for k in TASK_EVENT_FIELDS if k in e} if isinstance(e, Mapping) else e
            for e in events
        ]
    return out


def trim_allocation(alloc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an allocation (stub or event payload) the controller reads."""
    out = {k: alloc[k] for k in ALLOC_FIELDS if k in alloc}
    states = alloc.get("TaskStates")
    if isinstance(states, Mapping):
        out["TaskStates"] = {name: _trim_state(s) for name, s in states.items()}
    return out


def _modify_index(obj: Mapping[str, Any]) -> int:
    value = obj.get("ModifyIndex")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ObjectTable:
    """Objects by ID, indexed by the job they belong to; newer never replaced by older."""

    def __init__(self, job_of: Callable[[Mapping[str, Any]], JobKey]) -> None:
        self.job_of = job_of
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_job: dict[JobKey, set[str]] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def of(self, key: JobKey) -> list[dict[str, Any]]:
        """The job's objects, oldest first (by CreateIndex, then ID)."""
        found = [self.by_id[i] for i in self.by_job.get(key, ())]
        return sorted(found, key=lambda o: (o.get("CreateIndex") or 0, str(o.get("ID"))))

    def put(self, obj: dict[str, Any]) -> bool:
        """Store ``obj`` unless the cached one is newer; True when stored."""
        oid = str(obj.get("ID") or "")
        cached = self.by_id.get(oid)
        if cached is not None and _modify_index(cached) > _modify_index(obj):
            return False
        self.by_id[oid] = obj
        self.by_job.setdefault(self.job_of(obj), set()).add(oid)
        return True

    def remove(self, oid: str) -> None:
        obj = self.by_id.pop(oid, None)
        if obj is None:
            return
        key = self.job_of(obj)
        ids = self.by_job.get(key)
        if ids is not None:
            ids.discard(oid)
            if not ids:
                del self.by_job[key]

    def replace(self, listed: Iterable[dict[str, Any]], index: int) -> None:
        """A LIST at raft ``index``: put what it shows, drop what it no longer shows."""
        seen: set[str] = set()
        for obj in listed:
            seen.add(str(obj.get("ID") or ""))
            self.put(obj)
        for oid in [i for i, o in self.by_id.items() if i not in seen]:
            if _modify_index(self.by_id[oid]) <= index:
                self.remove(oid)

    def drop_job(self, key: JobKey) -> None:
        for oid in list(self.by_job.get(key, ())):
            self.remove(oid)
