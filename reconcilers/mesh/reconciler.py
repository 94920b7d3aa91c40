"""MeshReconciler: make one job look the way its meta asks, then say so in its status.

Level-triggered and key-only: whatever event brought the key here, the job is re-read and the
whole decision recomputed. Every job write is fenced with EnforceIndex (a stale view loses
instead of clobbering a user's newer spec); our own register comes back as an event whose
reconcile is a no-op because the marker hash matches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import structlog

from controller.nomad.errors import Conflict
from controller.runtime.clock import Clock, SystemClock
from controller.runtime.reconcile import Result
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import Condition, ConditionType, MeshStatus, Phase
from reconcilers import conditions as cond
from reconcilers.injection import jobview
from reconcilers.injection.plan import Apply, Invalid, NoOp, NoOpReason, Remove, plan_job
from reconcilers.mesh.rollout import rolled_out
from reconcilers.ports import JobStore, StatusStore

log = structlog.get_logger(__name__)


class MeshReconciler:
    """Inject, re-inject or remove the sidecar of one job, and record the outcome."""

    def __init__(
        self,
        jobs: JobStore,
        statuses: StatusStore,
        config: MeshConfig,
        *,
        clock: Clock | None = None,
        rollout_poll: float = 10.0,
    ) -> None:
        self.jobs = jobs
        self.statuses = statuses
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rollout_poll = rollout_poll
        self.phases: dict[JobKey, Phase] = {}
        self.writes = Counter[str]()

    async def reconcile(self, key: JobKey) -> Result:
        namespace, job_id = key
        job = await self.jobs.get_job(job_id, namespace)
        if job is None:
            self.phases.pop(key, None)
            await self.statuses.delete(namespace, job_id)
            return Result()
        decision = plan_job(job, self.config)
        if isinstance(decision, Invalid):
            # SpecValid comes first in report order, so the derived message is decision.reason
            await self._record(
                key,
                job,
                [cond.condition(ConditionType.SPEC_VALID, False, "InvalidSpec", decision.reason)],
            )
            return Result()
        if isinstance(decision, Apply | Remove):
            return await self._write(key, job, decision)
        return await self._observe(key, job, decision)

    async def _write(self, key: JobKey, job: dict[str, Any], decision: Apply | Remove) -> Result:
        namespace, job_id = key
        try:
            answer = await self.jobs.register_job(
                decision.job, enforce_index=int(job.get("JobModifyIndex") or 0)
            )
        except Conflict:
            # The conflicting write's own event usually re-enqueues the key first, but a missed
            # event must not leave the job un-meshed until the next resync: look again through
            # the key's backoff, so a job that keeps changing under us costs less and less.
            log.info("job changed under us; re-reading", job=job_id, namespace=namespace)
            return Result(requeue=True)
        kind = "apply" if isinstance(decision, Apply) else "remove"
        self.writes[kind] += 1
        index = int(answer.get("JobModifyIndex") or 0)
        log.info("job registered", action=kind, reason=decision.reason, job_modify_index=index)
        if isinstance(decision, Remove):
            await self._record(
                key,
                decision.job,
                [],
                phase=Phase.REMOVED,
                observed=index,
                message="mesh.tls is off: sidecar removed, the group is as the user wrote it",
            )
            return Result()
        await self._record(
            key,
            decision.job,
            [
                _spec_valid(decision.refused),
                cond.condition(
                    ConditionType.SIDECAR_INJECTED, True, "Registered", f"job modify index {index}"
                ),
                cond.condition(
                    ConditionType.ROLLED_OUT,
                    False,
                    "RollingOut",
                    "waiting for the new version to be placed",
                ),
            ],
            observed=index,
        )
        return Result(requeue_after=self.rollout_poll)

    async def _observe(self, key: JobKey, job: dict[str, Any], decision: NoOp) -> Result:
        namespace, job_id = key
        if decision.reason is NoOpReason.CHILD:
            # The parent's record covers its children (their allocations are the parent's
            # instances); a record of a child's own would only be a second, stale truth.
            await self.statuses.delete(namespace, job_id)
            self.phases.pop(key, None)
            return Result()
        if decision.reason is NoOpReason.NOT_MESHED:
            previous = await self.statuses.get(namespace, job_id)
            if previous is not None and previous.phase != Phase.REMOVED:
                await self.statuses.delete(namespace, job_id)
            self.phases.pop(key, None)
            return Result()
        if decision.reason is NoOpReason.STOPPED:
            await self._record(
                key, job, [], stopped=True, message="job is stopped (Stop=true); left alone"
            )
            return Result()
        deployment = await self.jobs.latest_deployment(job_id, namespace)
        allocations = await self.jobs.job_allocations(job_id, namespace)
        rollout = rolled_out(job, deployment, allocations)
        await self._record(
            key,
            job,
            [
                _spec_valid(decision.refused),
                cond.condition(
                    ConditionType.SIDECAR_INJECTED,
                    True,
                    "MarkerCurrent",
                    "every meshed group carries the current hash",
                ),
                rollout,
            ],
        )
        if rollout.status != "True":
            return Result(requeue_after=self.rollout_poll)
        return Result()

    async def _record(
        self,
        key: JobKey,
        job: dict[str, Any],
        updates: Sequence[Condition],
        *,
        phase: Phase | None = None,
        stopped: bool = False,
        observed: int | None = None,
        message: str | None = None,
    ) -> None:
        """Write the fields this reconciler owns (see ``crds_equivalent.status``) onto the stored
        record, keeping the others'. ``phase`` and ``message`` override the derived ones for
        the lifecycle states only the mesh reconciler knows (Removed); ``stopped`` keeps the
        recorded phase, and records nothing for a job never recorded."""
        namespace, job_id = key
        now = self.clock.now()
        owned: dict[str, object] = {
            "observed_index": observed
            if observed is not None
            else int(job.get("JobModifyIndex") or 0),
            "spec_hash": _marker(job),
        }
        if phase is not None:
            owned["phase"] = phase
        if message is not None:
            owned["message"] = message

        def derive(previous: MeshStatus | None) -> MeshStatus | None:
            if stopped and previous is None:
                return None
            restated = cond.restate(previous, updates, now)
            kept = {"phase": previous.phase} if stopped and previous is not None else {}
            return restated.model_copy(update=kept | owned)

        stored = await self.statuses.update(namespace, job_id, derive)
        if stored is not None:
            self.phases[key] = stored.phase


def _spec_valid(refused: tuple[str, ...]) -> Condition:
    """SpecValid: True; when meshed groups were left alone (Consul Connect), it says which and
    why, so the status shows the same reason as ``controllerctl render``."""
    if refused:
        return cond.condition(
            ConditionType.SPEC_VALID, True, "SomeGroupsRefused", "; ".join(refused)
        )
    return cond.condition(ConditionType.SPEC_VALID, True, "Parsed")


def _marker(job: dict[str, Any]) -> str:
    markers = sorted(
        {
            str(jobview.group_meta(g).get(keys.INJECTED_GROUP_META))
            for g in jobview.groups(job)
            if keys.INJECTED_GROUP_META in jobview.group_meta(g)
        }
    )
    return ",".join(markers)
