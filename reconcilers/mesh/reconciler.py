"""MeshReconciler: make one job look the way its meta asks, then say so in its status.

Level-triggered and key-only: whatever event brought the key here, the job is re-read and the
whole decision recomputed. Every job write is fenced with EnforceIndex (a stale view loses
instead of clobbering a user's newer spec); our own register comes back as an event whose
reconcile is a no-op because the marker hash matches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from controller.nomad.errors import BadRequest, Conflict, NotFound
from controller.runtime.clock import Clock, SystemClock
from controller.runtime.reconcile import Result
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import Condition, ConditionType, MeshStatus, Phase
from reconcilers import conditions as cond
from reconcilers.injection import jobview
from reconcilers.injection.canary import controller_promotes
from reconcilers.injection.plan import Apply, Invalid, NoOp, NoOpReason, Remove, plan_job
from reconcilers.injection.reissue import CannotReissue, with_nonce
from reconcilers.mesh.retry import DEPLOYMENT_FAILED, REVERTED, Backoff, Retry, after_failure
from reconcilers.mesh.rollout import (
    AWAITING_PROMOTION,
    canaries_healthy,
    own_deployment,
    reverted_by_nomad,
    rolled_out,
)
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
        retry_backoff: Backoff | None = None,
    ) -> None:
        self.jobs = jobs
        self.statuses = statuses
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rollout_poll = rollout_poll
        self.backoff = retry_backoff or Backoff()
        self.phases: dict[JobKey, Phase] = {}
        # Job writes by kind (apply, remove, retry) and promotions: what chaos and tests count.
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
        if isinstance(decision, Apply):
            held = await self._hold_after_revert(key, job)
            if isinstance(held, Result):
                return held
            return await self._write(key, job, decision, retry=held)
        if isinstance(decision, Remove):
            return await self._write(key, job, decision)
        return await self._observe(key, job, decision)

    async def _hold_after_revert(self, key: JobKey, job: dict[str, Any]) -> Result | Retry | None:
        """Before re-injecting: did Nomad's auto-revert just take our injection back? Then
        injecting again at once would fight it (every failed deployment answered by a write,
        two versions a cycle). Record ``Reverted`` with Nomad's description and wait out the
        backoff (a Result); when it is over, the Retry to store with the re-injection. None:
        an ordinary injection (first time, or a newer write than the revert)."""
        namespace, job_id = key
        previous = await self.statuses.get(namespace, job_id)
        if previous is None or not previous.written_index:
            return None
        deployments = await self.jobs.job_deployments(job_id, namespace)
        failed = reverted_by_nomad(job, deployments, previous.written_index)
        if failed is None:
            return None
        now = self.clock.now()
        retry = after_failure(
            Retry.from_json(previous.retry),
            deployment=str(failed.get("ID") or ""),
            reason=REVERTED,
            description=str(failed.get("StatusDescription") or ""),
            now=now,
            backoff=self.backoff,
        )
        if retry.due(now):
            log.info("re-injecting after Nomad's revert", job=job_id, attempt=retry.attempts)
            return retry
        await self._record(
            key,
            job,
            [
                cond.condition(ConditionType.SIDECAR_INJECTED, False, REVERTED, retry.message()),
                cond.condition(ConditionType.ROLLED_OUT, False, REVERTED, retry.description),
            ],
            retry=retry.to_json(),
        )
        return Result(requeue_after=retry.wait(now))

    async def _write(
        self,
        key: JobKey,
        job: dict[str, Any],
        decision: Apply | Remove,
        *,
        retry: Retry | None = None,
    ) -> Result:
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
                written=index,
                retry="",
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
            written=index,
            retry=retry.to_json() if retry is not None else None,
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
        retry_item: str | None = "" if rollout.status == "True" else None  # success: start over
        after = self.rollout_poll if rollout.status != "True" else None
        if deployment is not None and rollout.reason == "DeploymentFailed":
            failure = await self._failed_rollout(key, job, deployment)
            if isinstance(failure, Result):
                return failure
            if failure is not None:
                rollout = cond.condition(
                    ConditionType.ROLLED_OUT, False, DEPLOYMENT_FAILED, failure.message()
                )
                retry_item = failure.to_json()
                after = failure.wait(self.clock.now())
        elif deployment is not None and rollout.reason == AWAITING_PROMOTION:
            await self._promote(key, job, deployment)
        elif rollout.status == "True" and _running_for(job, deployment):
            # Allocations run, but Nomad has not judged the version yet. After a failure that
            # is no success: keep the retry (and its count) until the deployment says so.
            previous = await self.statuses.get(namespace, job_id)
            pending = Retry.from_json(previous.retry) if previous is not None else None
            if pending is not None and deployment is not None:
                rollout = cond.condition(
                    ConditionType.ROLLED_OUT,
                    False,
                    "RollingOut",
                    f"retry {pending.attempts}: deployment {deployment.get('ID')} is running "
                    f"(after {pending.description})",
                )
                retry_item, after = None, self.rollout_poll
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
            retry=retry_item,
        )
        return Result(requeue_after=after) if after is not None else Result()

    async def _failed_rollout(
        self, key: JobKey, job: dict[str, Any], deployment: Mapping[str, Any]
    ) -> Result | Retry | None:
        """Nomad failed the deployment of the job's current (injected) version and will not
        resume it. When that deployment is the controller's own, retry through a new version
        (a fresh rotation nonce) once the backoff allows (a Result: written); until then the
        Retry that says when. None: not ours to retry (a user's or a rotation's version)."""
        namespace, job_id = key
        if deployment.get("Status") != "failed":
            return None  # cancelled: a newer version superseded it, and that one rolls
        previous = await self.statuses.get(namespace, job_id)
        if previous is None or own_deployment([deployment], previous.written_index) is None:
            return None
        now = self.clock.now()
        retry = after_failure(
            Retry.from_json(previous.retry),
            deployment=str(deployment.get("ID") or ""),
            reason=DEPLOYMENT_FAILED,
            description=str(deployment.get("StatusDescription") or ""),
            now=now,
            backoff=self.backoff,
        )
        if not retry.due(now):
            return retry
        try:
            desired = with_nonce(job, retry.nonce(), self.config)
        except CannotReissue:
            return retry
        try:
            answer = await self.jobs.register_job(
                desired, enforce_index=int(job.get("JobModifyIndex") or 0)
            )
        except Conflict:
            return Result(requeue=True)
        self.writes["retry"] += 1
        index = int(answer.get("JobModifyIndex") or 0)
        log.info("retrying a failed deployment", job=job_id, attempt=retry.attempts, index=index)
        await self._record(
            key,
            desired,
            [
                cond.condition(
                    ConditionType.ROLLED_OUT,
                    False,
                    "RollingOut",
                    f"retry {retry.attempts} after {retry.description} "
                    f"(deployment {retry.deployment}): a new version",
                )
            ],
            observed=index,
            written=index,
            retry=retry.to_json(),
        )
        return Result(requeue_after=self.rollout_poll)

    async def _promote(
        self, key: JobKey, job: dict[str, Any], deployment: Mapping[str, Any]
    ) -> None:
        """Promote the canaries of the job's current version when its groups say
        ``mesh.tls.promote = "auto"`` and every canary is healthy; otherwise leave it to the
        user. Only a version carrying the current marker gets here (the plan is NoOp), so it
        is the controller's injection output: a user's submit without the sidecar is
        re-injected first. A promote that fails is logged; the next pass looks again."""
        namespace, job_id = key
        if not controller_promotes(job, self.config) or not canaries_healthy(deployment):
            return
        deployment_id = str(deployment.get("ID") or "")
        try:
            await self.jobs.promote_deployment(deployment_id, namespace)
        except (BadRequest, NotFound) as err:  # promoted meanwhile, or gone: look again
            log.info("promotion refused", job=job_id, deployment=deployment_id, error=str(err))
            return
        self.writes["promote"] += 1
        log.info("promoted the canaries", job=job_id, deployment=deployment_id)

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
        written: int | None = None,
        retry: str | None = None,
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
        if written is not None:
            owned["written_index"] = written
        if retry is not None:
            owned["retry"] = retry

        def derive(previous: MeshStatus | None) -> MeshStatus | None:
            if stopped and previous is None:
                return None
            restated = cond.restate(previous, updates, now)
            kept = {"phase": previous.phase} if stopped and previous is not None else {}
            return restated.model_copy(update=kept | owned)

        stored = await self.statuses.update(namespace, job_id, derive)
        if stored is not None:
            self.phases[key] = stored.phase


def _running_for(job: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> bool:
    """The job's current version has a deployment Nomad is still judging."""
    return (
        deployment is not None
        and deployment.get("JobVersion") == job.get("Version")
        and deployment.get("Status") in ("running", "pending", "paused")
    )


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
