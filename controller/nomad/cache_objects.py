"""How the cache holds things: job entries, jobs packed, allocations and deployments trimmed.

A job's entry (``JobEntry``) says what the cache knows of it; ``purged`` tells a Job event of a
deletion from one of a stop (below).

A kept job is held as compact JSON deflated against a preset dictionary (``Packer``): every
field stays, as injection needs, in a few hundred bytes instead of the 30 kB of Python objects
a meshed job of 8.6 kB JSON parses into. The dictionary is the first job packed: one cluster's
jobs share most of their text (Nomad's canonical defaults, and for meshed jobs the sidecar
task and its templates), which plain deflate cannot see across jobs. Reads parse afresh
(tens of microseconds), which also means no reader can change what the cache holds. Each job's
allocations and deployments are held the same way, one packed list per job (``ObjectTable``):
a trimmed allocation is ~1 kB of Python objects, packed a few dozen bytes. Only the objects of
the last ``HOT_JOBS`` jobs changed are held parsed (``recent.Recent``), and reads copy those.

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
kept. A new reader of another field adds it here (a unit test pins the shape).

Deployments are trimmed the same way (``trim_deployment``): ``mesh.rollout`` and
``mesh.outcomes`` read ID, JobVersion, JobSpecModifyIndex, Status, StatusDescription and per
group AutoPromote, Promoted, PlacedCanaries, DesiredCanaries, DesiredTotal, HealthyAllocs; and
only a job's newest ``DEPLOYMENTS_KEPT``: the rollout reads the latest, the revert check the
one of the controller's last write, which when it matters is the second newest (Nomad's
auto-revert registers exactly one version after it). Nomad garbage-collects deployments
without an event, so without the cap a job redeployed every day would grow the cache.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.nomad.stream import Event
from controller.runtime import jsonwire
from controller.runtime.recent import Recent
from crds_equivalent.jobkey import JobKey


@dataclass(slots=True)
class JobEntry:
    """What the cache knows of one job.

    ``index``: the ModifyIndex it was known at; ``modify_index``: its JobModifyIndex;
    ``job``: the raw job when kept, as compact JSON, deflated once ``packed`` (a job written
    lately waits unpacked among the cache's recent ones); ``verdict``: the predicate's (None:
    owed a read); ``parent``: ParentID of a child; ``stale``: a Conflict said the job moved."""

    index: int
    modify_index: int
    job: bytes | None = None
    verdict: bool | None = None
    parent: str = ""
    live: bool = True
    stale: bool = False
    packed: bool = False


class Gone:
    """A job the cache knows to be deleted (a tombstone): no read needed to say so."""


GONE = Gone()


class Unchanged:
    """An event that moved nothing a reader of the filled cache sees (``apply_event``)."""


UNCHANGED = Unchanged()


def intval(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def key_of(doc: Mapping[str, Any], namespace: str = "") -> JobKey:
    return JobKey.of(namespace or str(doc.get("Namespace") or "default"), str(doc.get("ID") or ""))


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


class Packer:
    """JSON values (a job; one job's allocations) to deflated compact JSON and back, against
    one preset dictionary: the first value packed, then ``seed`` (what the values have in
    common that the first may lack: the composition root passes a job as the controller
    injects it, so the sidecar every meshed job carries is in the dictionary).

    Raw deflate (``wbits`` < 0: no header, no checksum; the bytes never leave the process),
    level 3: against level 6 with zlib's header, measured on 300 of the bench's jobs as the
    controller injects them (8.4 kB of JSON each), deflate took ~25 us instead of ~42 and
    inflate ~7 instead of ~12 (the checksum of the whole text), for 295 bytes a job instead of
    273; one job's trimmed allocations, 152 bytes instead of 146, deflated in ~10 us instead
    of ~17 with the small window below. ``wbits`` sets the window, which bounds the
    dictionary (a job needs the whole 32 kB: the job and the seed); one job's allocations
    (~1 kB each) need less, and a 4 kB window with small tables (``mem_level``) makes the
    per-value copy of the primed stream cheaper."""

    def __init__(
        self, level: int = 3, *, wbits: int = -15, mem_level: int = 8, seed: bytes = b""
    ) -> None:
        self.level = level
        self.wbits = wbits
        self.mem_level = mem_level
        self.seed = seed
        self.zdict: bytes | None = None
        # Primed once and copied per value: loading a 32 kB dictionary into a fresh deflate
        # stream cost about three times the compression itself.
        self._deflate: Any = None
        self._inflate: Any = zlib.decompressobj(wbits)

    def pack(self, value: Any) -> bytes:
        return self.deflate(compact(value))

    def unpack(self, packed: bytes) -> Any:
        return jsonwire.loads(self.inflate(packed))

    def deflate(self, data: bytes) -> bytes:
        """Compact JSON text (``compact``) to its packed form."""
        if self.zdict is None:
            self.zdict = (data + self.seed)[-(1 << abs(self.wbits)) :]
            self._inflate = zlib.decompressobj(self.wbits, zdict=self.zdict)
        if self._deflate is None:
            self._deflate = zlib.compressobj(
                self.level, zlib.DEFLATED, self.wbits, self.mem_level, zdict=self.zdict
            )
        deflate = self._deflate.copy()
        return bytes(deflate.compress(data) + deflate.flush())

    def inflate(self, packed: bytes) -> bytes:
        """The compact JSON text a ``deflate`` packed."""
        inflate = self._inflate.copy()
        return bytes(inflate.decompress(packed) + inflate.flush())


def compact(value: Any) -> bytes:
    """A JSON value as the compact text the cache packs."""
    return jsonwire.dumps(value)


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
CLIENT_TERMINAL = frozenset({"complete", "failed", "lost"})  # structs.AllocClientStatus*


def finished(alloc: Mapping[str, Any]) -> bool:
    """Nomad wants it stopped and the client says it stopped (``TerminalStatus``)."""
    return alloc.get("DesiredStatus") != "run" and alloc.get("ClientStatus") in CLIENT_TERMINAL


def _trim_state(state: Any) -> Any:
    if not isinstance(state, Mapping):
        return state
    out: dict[str, Any] = {"State": state.get("State")}
    events = state.get("Events")
    if isinstance(events, list) and state.get("State") != "running":
        out["Events"] = [
            {k: e[k] for k in TASK_EVENT_FIELDS if k in e} if isinstance(e, Mapping) else e
            for e in events
        ]
    return out


def trim_allocation(alloc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an allocation (stub or event payload) the controller reads."""
    out = {k: alloc[k] for k in ALLOC_FIELDS if k in alloc}
    states = alloc.get("TaskStates")
    if isinstance(states, Mapping) and alloc.get("DesiredStatus") == "run":
        out["TaskStates"] = {str(n): _trim_state(s) for n, s in states.items()}
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
            str(name): {k: g[k] for k in DEPLOYMENT_GROUP_FIELDS if k in g}
            if isinstance(g, Mapping)
            else g
            for name, g in groups.items()
        }
    return out


def owner(obj: Mapping[str, Any]) -> JobKey:
    """The job an allocation or a deployment belongs to."""
    return JobKey.of(str(obj.get("Namespace") or "default"), str(obj.get("JobID") or ""))


def _modify_index(obj: Mapping[str, Any]) -> int:
    value = obj.get("ModifyIndex")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


HOT_JOBS = 64  # jobs whose objects are held parsed: a rollout's burst of events, not more


class ObjectTable:
    """Objects by the job they belong to, each job's held as one packed list; an object is
    never replaced by an older one.

    The objects of the ``hot`` jobs changed last are held parsed instead (``Recent``) and
    packed when they cool: a rollout's allocation events (placed, running, healthy; the old
    version's stop and completion) arrive in a burst, which then costs one pack, not one
    unpack and one pack per event. Reads unpack a cold job afresh and copy a hot one's, so no
    reader can change the table either way."""

    def __init__(
        self, job_of: Callable[[Mapping[str, Any]], JobKey], *, hot: int = HOT_JOBS
    ) -> None:
        self.job_of = job_of
        self.packer = Packer(wbits=-12, mem_level=4)
        self.by_job: dict[JobKey, bytes] = {}  # cold jobs, packed
        self.hot: Recent[JobKey, dict[str, dict[str, Any]]] = Recent(hot, self._cool)
        self.staged: dict[JobKey, list[bytes]] = {}  # a LIST in progress (``stage``)

    def __len__(self) -> int:
        return sum(len(self._read(k)) for k in self.jobs())

    def jobs(self) -> list[JobKey]:
        return [*self.by_job, *self.hot]

    def _cool(self, key: JobKey, objects: dict[str, dict[str, Any]]) -> None:
        self.by_job[key] = self.packer.pack(list(objects.values()))

    def _read(self, key: JobKey) -> list[dict[str, Any]]:
        """The job's objects as fresh values (a reader may change them)."""
        objects = self.hot.get(key)
        if objects is not None:
            return [_fresh(o) for o in objects.values()]
        packed = self.by_job.get(key)
        return [] if packed is None else list(self.packer.unpack(packed))

    def _load(self, key: JobKey) -> dict[str, dict[str, Any]]:
        """The job's objects by ID, to change and ``_store``: the hot set's own dict."""
        objects = self.hot.get(key)
        if objects is not None:
            return objects
        packed = self.by_job.pop(key, None)
        found: list[dict[str, Any]] = [] if packed is None else self.packer.unpack(packed)
        objects = {str(o.get("ID") or ""): o for o in found}
        if objects:
            self.hot.put(key, objects)
        return objects

    def _store(self, key: JobKey, objects: dict[str, dict[str, Any]]) -> None:
        if objects:
            self.hot.put(key, objects)
        else:
            self.hot.pop(key)
            self.by_job.pop(key, None)

    def of(self, key: JobKey) -> list[dict[str, Any]]:
        """The job's objects, oldest first (by CreateIndex, then ID)."""
        return sorted(self._read(key), key=_created)

    def put(self, obj: dict[str, Any]) -> bool:
        """Store ``obj`` unless the cached one is newer. True when a reader sees a change: a
        new object, or one with a field other than ``ModifyIndex`` moved (Nomad bumps it for
        changes to fields the trimmed object no longer holds, e.g. an allocation's health)."""
        key = self.job_of(obj)
        objects = self._load(key)
        oid = str(obj.get("ID") or "")
        cached = objects.get(oid)
        if cached is not None and _modify_index(cached) > _modify_index(obj):
            return False
        objects[oid] = obj
        self._store(key, objects)
        return cached is None or not _same_but_index(cached, obj)

    def remove(self, key: JobKey, oid: str, *, upto: int | None = None) -> bool:
        """Forget ``oid`` (with ``upto``: only if cached at that ModifyIndex or older); True
        when it was forgotten."""
        if key not in self.hot and key not in self.by_job:
            return False
        objects = self._load(key)
        cached = objects.get(oid)
        if cached is None or (upto is not None and _modify_index(cached) > upto):
            return False
        del objects[oid]
        self._store(key, objects)
        return True

    def stage(self, obj: dict[str, Any]) -> None:
        """One object of a LIST whose pages are still arriving, held as compact JSON until
        ``replace_staged``: a cluster's objects parsed at once (~1.5 kB an allocation, four
        a job) were most of the fill's peak at 10k jobs; as text they are a fraction."""
        self.staged.setdefault(self.job_of(obj), []).append(compact(obj))

    def replace_staged(self, index: int) -> None:
        """A LIST at raft ``index``, from what was staged since the last ``replace_staged`` or
        ``unstage``: put what it shows, drop what it no longer shows."""
        staged, self.staged = self.staged, {}
        for key in set(staged) | set(self.jobs()):
            objects = self._load(key)
            seen: set[str] = set()
            for obj in map(jsonwire.loads, staged.pop(key, ())):
                oid = str(obj.get("ID") or "")
                seen.add(oid)
                cached = objects.get(oid)
                if cached is None or _modify_index(cached) <= _modify_index(obj):
                    objects[oid] = obj
            for oid in [i for i, o in objects.items() if i not in seen]:
                if _modify_index(objects[oid]) <= index:
                    del objects[oid]
            self._store(key, objects)

    def unstage(self) -> None:
        """Forget a LIST that did not complete."""
        self.staged = {}

    def cap(self, key: JobKey, kept: int) -> None:
        """Keep only the job's ``kept`` newest objects (by CreateIndex)."""
        objects = self._load(key)
        if len(objects) > kept:
            newest = sorted(objects.values(), key=_created)[-kept:]
            self._store(key, {str(o.get("ID") or ""): o for o in newest})

    def drop_job(self, key: JobKey) -> None:
        self.hot.pop(key)
        self.by_job.pop(key, None)

    def flush(self) -> None:
        """Pack every hot job (what the table holds at rest, e.g. to measure it)."""
        self.hot.flush()


def _same_but_index(cached: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """The same object apart from its ``ModifyIndex``."""
    return len(cached) == len(obj) and all(
        k == "ModifyIndex" or (k in obj and obj[k] == v) for k, v in cached.items()
    )


def _fresh(value: Any) -> Any:
    """A copy of a JSON value that shares nothing mutable with it."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


def _created(obj: Mapping[str, Any]) -> tuple[int, str]:
    return intval(obj.get("CreateIndex")), str(obj.get("ID"))
