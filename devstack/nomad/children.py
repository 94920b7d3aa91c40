"""Child jobs: periodic launches and dispatches, as the Nomad leader creates them.

A periodic or parameterized job never gets allocations itself (``Job.Register`` creates
no eval for it); Nomad copies it into a *child* job that runs:

- ``nomad/periodic.go`` ``PeriodicDispatch``: every active periodic job
  (``IsPeriodicActive``: periodic, enabled, not stopped, not parameterized) is tracked with
  its next launch (``PeriodicConfig.Next`` in the job's ``TimeZone``). At launch,
  ``dispatch`` computes the following launch first, then skips the launch when
  ``ProhibitOverlap`` is set and ``RunningChildren`` finds a child with a non-terminal eval
  or allocation; otherwise ``createEval`` -> ``deriveJob`` (a copy with ``ParentID``,
  ``ID = Name = <parent>/periodic-<launch unix>``, ``Periodic = nil``, empty status) ->
  ``Server.DispatchJob`` (one raft write with the job and its ``periodic-job`` eval).
  ``ForceEval`` (``POST /v1/job/:id/periodic/force``, ``nomad/periodic_endpoint.go``
  ``Periodic.Force``) launches at once and does not look at ``ProhibitOverlap``.
- ``nomad/job_endpoint.go`` ``Job.Dispatch``: a copy of the parameterized job with
  ``ID = Name = <parent>/dispatch-<unix>-<8 hex>`` (``structs.DispatchedID``),
  ``ParentID``, ``Dispatched = true``, the dispatch ``Meta`` merged into the job meta and
  the payload kept (Nomad snappy-compresses it; the twin keeps it raw), registered in one
  raft write and evaluated in a second (``job-register`` eval with ``JobModifyIndex``).

Children keep everything else of the parent (its ``Version``, ``Stable``, meta, groups and
so its mesh markers), which is why a controller that re-registers them is refused by
``validateJobUpdate``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devstack.nomad import cron
from devstack.nomad.codec import new_id, now_ns
from devstack.nomad.errors import ApiError
from devstack.nomad.scheduler import Scheduler, new_eval
from devstack.nomad.state import JobKey, NomadState
from devstack.nomad.wire import alloc_terminal

log = logging.getLogger(__name__)

PERIODIC_LAUNCH_SUFFIX = "/periodic-"  # structs.PeriodicLaunchSuffix
DISPATCH_LAUNCH_SUFFIX = "/dispatch-"  # structs.DispatchLaunchSuffix
DISPATCH_PAYLOAD_SIZE_LIMIT = 16 * 1024  # nomad/job_endpoint.go DispatchPayloadSizeLimit
TRACKED_VERSIONS = 6


def is_periodic(job: dict[str, Any]) -> bool:
    """``Job.IsPeriodic``: a Periodic block, enabled or not."""
    return job.get("Periodic") is not None


def is_parameterized(job: dict[str, Any]) -> bool:
    """``Job.IsParameterized``: a dispatched child is not parameterized any more."""
    return job.get("ParameterizedJob") is not None and not job.get("Dispatched")


def is_periodic_active(job: dict[str, Any]) -> bool:
    """``Job.IsPeriodicActive``."""
    return (
        is_periodic(job)
        and bool(job["Periodic"].get("Enabled"))
        and not job.get("Stop")
        and not is_parameterized(job)
    )


def location(job: dict[str, Any]) -> ZoneInfo:
    """``PeriodicConfig.GetLocation``: the TimeZone, UTC when unset or unknown."""
    try:
        return ZoneInfo(job["Periodic"].get("TimeZone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def next_launch(job: dict[str, Any], after: datetime) -> datetime | None:
    """``PeriodicConfig.Next``: the earliest of ``Spec``/``Specs`` after ``after``."""
    periodic = job["Periodic"]
    specs = [periodic["Spec"]] if periodic.get("Spec") else list(periodic.get("Specs") or [])
    best: datetime | None = None
    for spec in specs:
        t = cron.parse(spec).next(after)
        if t is not None and (best is None or t < best):
            best = t
    return best


def validate_periodic(periodic: dict[str, Any]) -> list[str]:
    """``PeriodicConfig.Validate`` texts (cron errors carry the twin's parser message)."""
    if not periodic.get("Enabled"):
        return []
    errors: list[str] = []
    spec, specs = periodic.get("Spec") or "", periodic.get("Specs") or []
    if spec and specs:
        errors.append("Only cron or crons may be used")
    if not spec and not specs:
        errors.append("Must specify a spec")
    tz = periodic.get("TimeZone") or ""
    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(f'Invalid time zone "{tz}": unknown time zone {tz}')
    if periodic.get("SpecType") == "cron":
        for s in ([spec] if spec else []) + list(specs):
            try:
                cron.parse(s)
            except cron.CronError as exc:
                errors.append(f'Invalid cron spec "{s}": {exc}')
    else:
        errors.append(f'Unknown periodic specification type "{periodic.get("SpecType")}"')
    return errors


def validate_parameterized(config: dict[str, Any]) -> list[str]:
    """``ParameterizedJobConfig.Validate`` texts."""
    errors: list[str] = []
    if config.get("Payload") not in ("optional", "required", "forbidden"):
        errors.append(f'Unknown payload requirement: "{config.get("Payload")}"')
    both = sorted(set(config.get("MetaRequired") or []) & set(config.get("MetaOptional") or []))
    if both:
        errors.append(
            "Required and optional meta keys should be disjoint. Following keys exist in "
            f"both: [{' '.join(both)}]"
        )
    return errors


def validate_job_update(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """``nomad/job_endpoint.go`` ``validateJobUpdate``, the first failing check wins."""
    if old is None:
        if new.get("Dispatched"):
            raise ApiError(500, "job can't be submitted with 'Dispatched' set")
        return
    if old["Type"] != new["Type"]:
        raise ApiError(500, f'cannot update job from type "{old["Type"]}" to "{new["Type"]}"')
    if is_periodic(old) and not is_periodic(new):
        raise ApiError(500, "cannot update periodic job to being non-periodic")
    if is_periodic(new) and not is_periodic(old):
        raise ApiError(500, "cannot update non-periodic job to being periodic")
    if is_parameterized(old) and not is_parameterized(new):
        raise ApiError(500, "cannot update parameterized job to being non-parameterized")
    if is_parameterized(new) and not is_parameterized(old):
        raise ApiError(500, "cannot update non-parameterized job to being parameterized")
    if bool(old.get("Dispatched")) != bool(new.get("Dispatched")):
        raise ApiError(500, "field 'Dispatched' is read-only")


class ChildJobs:
    """The leader's periodic dispatcher plus ``Job.Dispatch``/``Periodic.Force``."""

    def __init__(self, state: NomadState, sched: Scheduler) -> None:
        self.state = state
        self.sched = sched
        # tracked job -> (JobModifyIndex it was tracked at, next launch or None)
        self._tracked: dict[JobKey, tuple[int, datetime | None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- tracking (PeriodicDispatch.Add / Remove) ------------------------------------
    def sync(self) -> None:
        """Track every active periodic job, untrack the rest; called after job writes.

        A re-registered job gets a fresh next launch from now, as ``Add`` recomputes it."""
        active = {k: j for k, j in self.state.jobs.items() if is_periodic_active(j)}
        for key in list(self._tracked):
            if key not in active:
                del self._tracked[key]
        for key, job in active.items():
            seen = self._tracked.get(key)
            if seen is None or seen[0] != job["JobModifyIndex"]:
                now = datetime.now(location(job))
                self._tracked[key] = (job["JobModifyIndex"], self._next(job, now))
        self._wake.set()

    @staticmethod
    def _next(job: dict[str, Any], after: datetime) -> datetime | None:
        try:
            return next_launch(job, after)
        except cron.CronError:
            return None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        """``PeriodicDispatch.run``: sleep until the earliest launch or a change."""
        while True:
            due = [(t, k) for k, (_, t) in self._tracked.items() if t is not None]
            self._wake.clear()
            if not due:
                await self._wake.wait()
                continue
            launch, key = min(due)
            delay = launch.timestamp() - time.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            try:
                self._dispatch(key, launch)
            except Exception:
                log.exception("periodic launch of %s failed", key)
            await asyncio.sleep(0)

    def _dispatch(self, key: JobKey, launch: datetime) -> None:
        """``PeriodicDispatch.dispatch``: next launch first, then the overlap check."""
        job = self.state.jobs.get(key)
        tracked = self._tracked.get(key)
        if job is None or tracked is None:
            return
        self._tracked[key] = (tracked[0], self._next(job, launch))
        if job["Periodic"].get("ProhibitOverlap") and self.running_children(job):
            log.debug("skipping launch of %s: prohibit_overlap", key)
            return
        self.create_eval(job, launch)

    def running_children(self, job: dict[str, Any]) -> bool:
        """``Server.RunningChildren``: a periodic child with a non-terminal eval or alloc."""
        prefix = job["ID"] + PERIODIC_LAUNCH_SUFFIX
        for (ns, cid), child in self.state.jobs.items():
            if ns != job["Namespace"] or not cid.startswith(prefix):
                continue
            if child.get("ParentID") != job["ID"]:
                continue
            for ev in self.state.evals_of((ns, cid)):
                if ev["Status"] not in ("complete", "failed", "canceled"):
                    return True
                for alloc in self.state.allocs_of((ns, cid)):
                    if alloc.get("EvalID") == ev["ID"] and not alloc_terminal(alloc):
                        return True
        return False

    def create_eval(self, parent: dict[str, Any], launch: datetime) -> dict[str, Any]:
        """``createEval`` -> ``deriveJob`` -> ``Server.DispatchJob``."""
        child = copy.deepcopy(parent)
        child_id = f"{parent['ID']}{PERIODIC_LAUNCH_SUFFIX}{int(launch.timestamp())}"
        child.update(ParentID=parent["ID"], ID=child_id, Name=child_id, Periodic=None, Status="")
        child["StatusDescription"] = ""
        with self.state.txn("JobRegistered") as tx:
            stored = self._store(child, tx.index)
            tx.put_job(stored)
            tx.tables.add("job_version")
            ev = new_eval(stored, "periodic-job", tx.index)
            tx.put_eval(ev)
        self.sched.enqueue(ev["ID"])
        return ev

    def _store(self, child: dict[str, Any], index: int) -> dict[str, Any]:
        """``upsertJobImpl`` for a new job: indexes set, Version kept (it is the parent's)."""
        existing = self.state.jobs.get((child["Namespace"], child["ID"]))
        stored = {
            **child,
            "Status": "pending",
            "SubmitTime": now_ns(),
            "CreateIndex": existing["CreateIndex"] if existing else index,
            "ModifyIndex": index,
            "JobModifyIndex": index,
        }
        if existing is not None:
            stored["Version"] = existing["Version"] + 1
        key = (stored["Namespace"], stored["ID"])
        self.state.job_versions[key] = [stored, *self.state.job_versions.get(key, [])][
            :TRACKED_VERSIONS
        ]
        return stored

    # ---- endpoints ---------------------------------------------------------------------
    def force(self, ns: str, job_id: str) -> dict[str, Any]:
        """``Periodic.Force``: the reply is ``PeriodicForceResponse`` (EvalID,
        EvalCreateIndex, Index)."""
        job = self.state.jobs.get((ns, job_id))
        if job is None:
            raise ApiError(500, "job not found")
        if not is_periodic(job):
            raise ApiError(500, "can't force launch non-periodic job")
        if (ns, job_id) not in self._tracked:
            raise ApiError(
                500,
                f'force launch for job "{job_id}" failed: '
                f'can\'t force run non-tracked job "{job_id}" ({ns})',
            )
        ev = self.create_eval(job, datetime.now(location(job)))
        return {
            "EvalID": ev["ID"],
            "EvalCreateIndex": ev["CreateIndex"],
            "Index": ev["CreateIndex"],
        }

    def dispatch(
        self,
        ns: str,
        job_id: str,
        meta: dict[str, str] | None,
        payload: bytes,
        id_prefix_template: str = "",
    ) -> dict[str, Any]:
        """``Job.Dispatch``; the reply is ``JobDispatchResponse``."""
        parent = self.state.jobs.get((ns, job_id))
        if parent is None:
            raise ApiError(500, "parameterized job not found")
        if not is_parameterized(parent):
            raise ApiError(500, f'Specified job "{job_id}" is not a parameterized job')
        if parent.get("Stop"):
            raise ApiError(500, f'Specified job "{job_id}" is stopped')
        _validate_dispatch(parent["ParameterizedJob"], meta or {}, payload)
        now = int(time.time())
        suffix = f"{id_prefix_template}-{now}" if id_prefix_template else str(now)
        child_id = f"{job_id}{DISPATCH_LAUNCH_SUFFIX}{suffix}-{new_id()[:8]}"
        child = copy.deepcopy(parent)
        child.update(ID=child_id, ParentID=job_id, Name=child_id, Dispatched=True, Status="")
        child["StatusDescription"] = ""
        if meta:
            child["Meta"] = {**(child.get("Meta") or {}), **meta}
        child["Payload"] = base64.b64encode(payload).decode() if payload else None
        with self.state.txn("JobRegistered") as tx:
            stored = self._store(child, tx.index)
            tx.put_job(stored)
            tx.tables.add("job_version")
        reply = {
            "DispatchedJobID": child_id,
            "EvalID": "",
            "EvalCreateIndex": 0,
            "JobCreateIndex": tx.index,
            "Index": tx.index,
        }
        if is_periodic(stored):  # a periodic parameterized job: its children launch later
            self.sync()
            return reply
        with self.state.txn("EvaluationUpdated") as etx:
            ev = new_eval(stored, "job-register", etx.index, JobModifyIndex=tx.index)
            etx.put_eval(ev)
        self.sched.enqueue(ev["ID"])
        reply.update(EvalID=ev["ID"], EvalCreateIndex=etx.index, Index=etx.index)
        return reply


def _validate_dispatch(config: dict[str, Any], meta: dict[str, str], payload: bytes) -> None:
    """``validateDispatchRequest`` texts, in its order (Go prints a []string as ``[a b]``)."""
    mode = config.get("Payload") or "optional"
    if mode == "required" and not payload:
        raise ApiError(500, "Payload is not provided but required by parameterized job")
    if mode == "forbidden" and payload:
        raise ApiError(500, "Payload provided but forbidden by parameterized job")
    if len(payload) > DISPATCH_PAYLOAD_SIZE_LIMIT:
        raise ApiError(
            500,
            f"Payload exceeds maximum size; {len(payload)} > {DISPATCH_PAYLOAD_SIZE_LIMIT}",
        )
    required = list(config.get("MetaRequired") or [])
    allowed = set(required) | set(config.get("MetaOptional") or [])
    unpermitted = [k for k in meta if k not in allowed]
    if unpermitted:
        raise ApiError(
            500,
            f"Dispatch request included unpermitted metadata keys: [{' '.join(unpermitted)}]",
        )
    missing = [k for k in required if k not in meta]
    if missing:
        raise ApiError(500, f"Dispatch did not provide required meta keys: [{' '.join(missing)}]")
