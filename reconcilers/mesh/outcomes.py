"""What the mesh reconciler does about how Nomad judged its version: the deployment outcomes.

Injecting is one write; what follows depends on Nomad's deployment of that version, and this
is the part that grew its own rules: a *failed* deployment of our own version is retried
through a fresh version under a capped backoff kept in the status record; a version Nomad's
auto-revert took back is not re-injected until that backoff allows (else the controller and
the revert would fight, two versions a cycle); canaries of a meshed version are promoted only
when the groups say ``mesh.tls.promote = "auto"``. Kept beside the reconciler, not in it, so the
reconcile reads as inject / remove / observe and the retry policy has one home.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from controller.nomad.errors import BadRequest, Conflict, NotFound
from controller.runtime.clock import Clock
from controller.runtime.reconcile import Result
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ROLLING_OUT, Condition, ConditionType
from reconcilers import conditions as cond
from reconcilers.injection.canary import controller_promotes
from reconcilers.injection.reissue import CannotReissue, with_nonce
from reconcilers.mesh.record import MeshRecord
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


@dataclass(frozen=True)
class Rollout:
    """The RolledOut condition for the current version, and what to store and when to look again.

    ``retry`` is the status field to write: "" clears it (success), None keeps the stored one.
    ``requeue_after`` None: nothing left to watch.
    """

    condition: Condition
    retry: str | None
    requeue_after: float | None


class DeploymentOutcomes:
    """Reverts held back, failed deployments retried, canaries promoted: for one reconciler."""

    def __init__(
        self,
        jobs: JobStore,
        statuses: StatusStore,
        config: MeshConfig,
        record: MeshRecord,
        *,
        clock: Clock,
        backoff: Backoff,
        rollout_poll: float,
        writes: Counter[str],
    ) -> None:
        self.jobs = jobs
        self.statuses = statuses
        self.config = config
        self.record = record
        self.clock = clock
        self.backoff = backoff
        self.rollout_poll = rollout_poll
        self.writes = writes

    async def hold_after_revert(self, key: JobKey, job: dict[str, Any]) -> Result | Retry | None:
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
        await self.record.write(
            key,
            job,
            [
                cond.condition(ConditionType.SIDECAR_INJECTED, False, REVERTED, retry.message()),
                cond.condition(ConditionType.ROLLED_OUT, False, REVERTED, retry.description),
            ],
            retry=retry.to_json(),
        )
        return Result(requeue_after=retry.wait(now))

    async def judge(self, key: JobKey, job: dict[str, Any]) -> Rollout | Result:
        """The rollout of a job whose markers are current: placed, failed (and retried),
        awaiting promotion (and promoted), or still being judged by Nomad. A Result: a retry
        was written (or conflicted), and the caller records nothing more."""
        namespace, job_id = key
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
        elif rollout.reason == ROLLING_OUT and _running_for(job, deployment):
            # Nomad is still judging the version. After a failure, say it is the retry that
            # rolls (the stored retry, and its count, are kept until the deployment succeeds).
            previous = await self.statuses.get(namespace, job_id)
            pending = Retry.from_json(previous.retry) if previous is not None else None
            if pending is not None and deployment is not None:
                rollout = cond.condition(
                    ConditionType.ROLLED_OUT,
                    False,
                    ROLLING_OUT,
                    f"retry {pending.attempts}: {rollout.message} (after {pending.description})",
                )
        return Rollout(rollout, retry_item, after)

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
        await self.record.write(
            key,
            desired,
            [
                cond.condition(
                    ConditionType.ROLLED_OUT,
                    False,
                    ROLLING_OUT,
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


def _running_for(job: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> bool:
    """The job's current version has a deployment Nomad is still judging."""
    return (
        deployment is not None
        and deployment.get("JobVersion") == job.get("Version")
        and deployment.get("Status") in ("running", "pending", "paused")
    )
