"""How the cache holds things: job entries, jobs packed, allocations and deployments trimmed.

A job's entry (``JobEntry``) says what the cache knows of it; ``purged`` tells a Job event of a
deletion from one of a stop (below).

A kept job is held as compact JSON deflated against a preset dictionary (``JobPacker``): every
field stays, as injection needs, in a few hundred bytes instead of the 30 kB of Python objects
a meshed job of 8.6 kB JSON parses into. The dictionary is the first job packed: one cluster's
jobs share most of their text (Nomad's canonical defaults, and for meshed jobs the sidecar
task and its templates), which plain deflate cannot see across jobs. Reads parse afresh
(tens of microseconds), which also means no reader can change what the cache holds.

An ``ObjectTable`` holds objects by ID with an index by job, and replaces one only with one at
least as new (``ModifyIndex``: Nomad bumps it on every change of an allocation, client updates
included — ``nestedUpdateAllocFromClient`` — and of a deployment). ``replace`` applies a LIST
taken at a raft index: listed objects are put by the same rule, and cached objects absent from
it are dropped only when no newer than the LIST (an event since then knows better).

Allocations are trimmed (``trim_allocation``) to what the controller reads of them, so the
cache holds a few hundred bytes per allocation instead of the stub's kilobytes. The inventory
(grep over ``reconcilers/`` and ``controller/``): ``instances.matching.running_allocations``
(ID, TaskGroup, ClientStatus, DesiredStatus), ``mesh.rollout`` (JobVersion, TaskGroup,
DesiredStatus, ClientStatus, and of ``TaskStates[task]``: State, and only for a task that is
not running the Events' Type, Time, Message, DisplayMessage, FailsTask); the cache itself
(Namespace, JobID, ModifyIndex, CreateIndex). Every reader skips allocations whose
DesiredStatus is not ``run``, so theirs keep no TaskStates, and one that is also finished on
the client (``finished``) is not kept at all: nobody reads it, and Nomad garbage-collects it
without an event, so keeping it would only grow the cache until the next refill. Instance
addresses come from the service catalogs, never from the allocation, so
``AllocatedResources`` is neither asked for (the LIST runs without ``resources=true``) nor
kept. A new reader of another field adds it here (a unit test pins the shape). Strings that
repeat across allocations (statuses, names) are interned.

Deployments are trimmed the same way (``trim_deployment``): ``mesh.rollout`` and
``mesh.outcomes`` read ID, JobVersion, JobSpecModifyIndex, Status, StatusDescription and per
group AutoPromote, Promoted, PlacedCanaries, DesiredCanaries, DesiredTotal, HealthyAllocs; and
only a job's newest ``DEPLOYMENTS_KEPT``: the rollout reads the latest, the revert check the
one of the controller's last write, which when it matters is the second newest (Nomad's
auto-revert registers exactly one version after it). Nomad garbage-collects deployments
without an event, so without the cap a job redeployed every day would grow the cache.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.nomad.stream import Event
from crds_equivalent.jobkey import JobKey


@dataclass(slots=True)
class JobEntry:
    """What the cache knows of one job.

    ``index``: the ModifyIndex it was known at; ``modify_index``: its JobModifyIndex;
    ``job``: the raw job when kept (``pack``ed); ``verdict``: the predicate's (None: owed a read);
    ``parent``: ParentID of a child; ``stale``: a Conflict said the job moved (read it)."""

    index: int
    modify_index: int
    job: bytes | None = None
    verdict: bool | None = None
    parent: str = ""
    live: bool = True
    stale: bool = False


class Gone:
    """A job the cache knows to be deleted (a tombstone): no read needed to say so."""


GONE = Gone()


def intval(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def key_of(doc: Mapping[str, Any], namespace: str = "") -> JobKey:
    return JobKey(namespace or str(doc.get("Namespace") or "default"), str(doc.get("ID") or ""))


def purged(event: Event, job: Mapping[str, Any]) -> bool:
    """A Job event that says the job was deleted (purged or garbage-collected), not stopped.

    Nomad 2.0 says so (``JobEvent.Deleted``, nomad#27614). Before it, a purge and a stop are
    both ``JobDeregistered`` (``JobBatchDeregistered`` from the GC) with the same payload
    shape, but the payload of a delete is the job *before* it (``eventFromChange`` takes
    ``change.Before``), last written at an older index, while a stop writes the job (and its
    ModifyIndex) at the event's own index."""
    if event.payload.get("Deleted"):
        return True
    if event.type not in ("JobDeregistered", "JobBatchDeregistered"):
        return False
    return intval(job.get("ModifyIndex")) < event.index


ZDICT_MAX = 32 * 1024  # deflate's window: a longer dictionary is not used


class JobPacker:
    """Jobs to deflated compact JSON and back, against one preset dictionary."""

    def __init__(self, level: int = 6) -> None:
        self.level = level
        self.zdict: bytes | None = None

    def pack(self, job: Mapping[str, Any]) -> bytes:
        data = json.dumps(job, separators=(",", ":")).encode()
        if self.zdict is None:
            self.zdict = data[-ZDICT_MAX:]
        deflate = zlib.compressobj(self.level, zdict=self.zdict)
        return deflate.compress(data) + deflate.flush()

    def unpack(self, packed: bytes) -> dict[str, Any]:
        inflate = zlib.decompressobj(zdict=self.zdict or b"")
        job: dict[str, Any] = json.loads(inflate.decompress(packed) + inflate.flush())
        return job


ALLOC_FIELDS = (
    "ID",
    "Namespace",
    "JobID",
    "JobVersion",
    "TaskGroup",
    "DesiredStatus",
    "ClientStatus",
    "CreateIndex",
    "ModifyIndex",
)
TASK_EVENT_FIELDS = ("Type", "Time", "Message", "DisplayMessage", "FailsTask")
INTERNED = ("Namespace", "JobID", "TaskGroup", "DesiredStatus", "ClientStatus")
CLIENT_TERMINAL = frozenset({"complete", "failed", "lost"})  # structs.AllocClientStatus*


def finished(alloc: Mapping[str, Any]) -> bool:
    """Nomad wants it stopped and the client says it stopped (``TerminalStatus``)."""
    return alloc.get("DesiredStatus") != "run" and alloc.get("ClientStatus") in CLIENT_TERMINAL


def _interned(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def _trim_state(state: Any) -> Any:
    if not isinstance(state, Mapping):
        return state
    out: dict[str, Any] = {"State": _interned(state.get("State"))}
    events = state.get("Events")
    if isinstance(events, list) and state.get("State") != "running":
        out["Events"] = [
            {k: e[k] for k in TASK_EVENT_FIELDS if k in e} if isinstance(e, Mapping) else e
            for e in events
        ]
    return out


def trim_allocation(alloc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an allocation (stub or event payload) the controller reads."""
    out = {
        k: _interned(alloc[k]) if k in INTERNED else alloc[k] for k in ALLOC_FIELDS if k in alloc
    }
    states = alloc.get("TaskStates")
    if isinstance(states, Mapping) and alloc.get("DesiredStatus") == "run":
        out["TaskStates"] = {sys.intern(str(n)): _trim_state(s) for n, s in states.items()}
    return out


DEPLOYMENTS_KEPT = 3

DEPLOYMENT_FIELDS = (
    "ID",
    "Namespace",
    "JobID",
    "JobVersion",
    "JobSpecModifyIndex",
    "Status",
    "StatusDescription",
    "CreateIndex",
    "ModifyIndex",
)
DEPLOYMENT_GROUP_FIELDS = (
    "AutoPromote",
    "Promoted",
    "PlacedCanaries",
    "DesiredCanaries",
    "DesiredTotal",
    "HealthyAllocs",
)


def trim_deployment(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a deployment (LIST entry or event payload) the controller reads."""
    out = {k: deployment[k] for k in DEPLOYMENT_FIELDS if k in deployment}
    groups = deployment.get("TaskGroups")
    if isinstance(groups, Mapping):
        out["TaskGroups"] = {
            sys.intern(str(name)): {k: g[k] for k in DEPLOYMENT_GROUP_FIELDS if k in g}
            if isinstance(g, Mapping)
            else g
            for name, g in groups.items()
        }
    return out


def owner(obj: Mapping[str, Any]) -> JobKey:
    """The job an allocation or a deployment belongs to."""
    return JobKey(str(obj.get("Namespace") or "default"), str(obj.get("JobID") or ""))


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

    def remove(self, oid: str, *, upto: int | None = None) -> None:
        """Forget ``oid`` (with ``upto``: only if cached at that ModifyIndex or older)."""
        cached = self.by_id.get(oid)
        if cached is None or (upto is not None and _modify_index(cached) > upto):
            return
        obj = self.by_id.pop(oid)
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

    def cap(self, key: JobKey, kept: int) -> None:
        """Keep only the job's ``kept`` newest objects (by CreateIndex)."""
        found = self.of(key)
        for obj in found[: max(0, len(found) - kept)]:
            self.remove(str(obj.get("ID") or ""))

    def drop_job(self, key: JobKey) -> None:
        for oid in list(self.by_job.get(key, ())):
            self.remove(oid)
