"""MeshReconciler: make one job look the way its meta asks, then say so in its status.

Level-triggered and key-only: whatever event brought the key here, the job is re-read and the
whole decision recomputed. Every job write is fenced with EnforceIndex (a stale view loses
instead of clobbering a user's newer spec); our own register comes back as an event whose
reconcile is a no-op because the marker hash matches. What follows a write (Nomad's verdict
on the deployment: retries, held-back reverts, canary promotion) is in ``outcomes``; the
status fields written, in ``record``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog

from controller.nomad.errors import Conflict
from controller.runtime.clock import Clock, SystemClock
from controller.runtime.reconcile import Result
from controller.vault.client import VaultError
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ROLLING_OUT, ConditionType, Phase
from reconcilers import conditions as cond
from reconcilers.injection.grant import CannotBind, Grant, job_role
from reconcilers.injection.plan import Apply, Invalid, NoOp, NoOpReason, Remove, plan_job
from reconcilers.mesh.outcomes import DeploymentOutcomes
from reconcilers.mesh.record import MeshRecord, spec_valid
from reconcilers.mesh.retry import Backoff, Retry
from reconcilers.ports import CertGrants, JobStore, StatusStore

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
        grants: CertGrants | None = None,
    ) -> None:
        self._jobs = jobs
        # Identity-bound leaves: each meshed job's PKI role, granted before its register and
        # withdrawn when it stops being meshed. None only where no Vault is wired (unit tests).
        self.grants = grants
        self.statuses = statuses
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rollout_poll = rollout_poll
        self.backoff = retry_backoff or Backoff()
        self.phases: dict[JobKey, Phase] = {}
        # Job writes by kind (apply, remove, retry) and promotions: what chaos and tests count.
        self.writes = Counter[str]()
        self.record = MeshRecord(statuses, self.clock, self.phases)
        self.outcomes = DeploymentOutcomes(
            jobs,
            statuses,
            config,
            self.record,
            clock=self.clock,
            backoff=self.backoff,
            rollout_poll=rollout_poll,
            writes=self.writes,
        )

    @property
    def jobs(self) -> JobStore:
        return self._jobs

    @jobs.setter
    def jobs(self, jobs: JobStore) -> None:
        """Swapping the store (tests wrap it to race a user's write) swaps it for the outcomes
        too: both halves of one reconcile must talk to the same Nomad."""
        self._jobs = jobs
        self.outcomes.jobs = jobs

    async def reconcile(self, key: JobKey) -> Result:
        namespace, job_id = key
        job = await self.jobs.get_job(job_id, namespace)
        if job is None:
            await self._withdraw(key)
            self.phases.pop(key, None)
            await self.statuses.delete(namespace, job_id)
            return Result()
        decision = plan_job(job, self.config)
        if isinstance(decision, Invalid):
            # SpecValid comes first in report order, so the derived message is decision.reason
            await self.record.write(
                key,
                job,
                [cond.condition(ConditionType.SPEC_VALID, False, "InvalidSpec", decision.reason)],
            )
            return Result()
        if isinstance(decision, Apply):
            held = await self.outcomes.hold_after_revert(key, job)
            if isinstance(held, Result):
                return held
            return await self._write(key, job, decision, retry=held)
        if isinstance(decision, Remove):
            return await self._write(key, job, decision)
        return await self._observe(key, job, decision)

    async def _write(
        self,
        key: JobKey,
        job: dict[str, Any],
        decision: Apply | Remove,
        *,
        retry: Retry | None = None,
    ) -> Result:
        namespace, job_id = key
        if isinstance(decision, Apply):
            # Before the register: the new sidecars ask for their leaves as soon as they start.
            try:
                await self._grant(decision.grant)
            except VaultError as err:
                return await self._grant_failed(key, job, err)
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
            await self._withdraw(key)
            await self.record.write(
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
        await self.record.write(
            key,
            decision.job,
            [
                spec_valid(decision.refused),
                cond.condition(
                    ConditionType.SIDECAR_INJECTED, True, "Registered", f"job modify index {index}"
                ),
                cond.condition(
                    ConditionType.ROLLED_OUT,
                    False,
                    ROLLING_OUT,
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
            await self._withdraw(key)
            previous = await self.statuses.get(namespace, job_id)
            if previous is not None and previous.phase != Phase.REMOVED:
                await self.statuses.delete(namespace, job_id)
            self.phases.pop(key, None)
            return Result()
        if decision.reason is NoOpReason.STOPPED:
            await self.record.write(
                key, job, [], stopped=True, message="job is stopped (Stop=true); left alone"
            )
            return Result()
        await self._grant(decision.grant)
        rollout = await self.outcomes.judge(key, job)
        if isinstance(rollout, Result):
            return rollout
        await self.record.write(
            key,
            job,
            [
                spec_valid(decision.refused),
                cond.condition(
                    ConditionType.SIDECAR_INJECTED,
                    True,
                    "MarkerCurrent",
                    "every meshed group carries the current hash",
                ),
                rollout.condition,
            ],
            retry=rollout.retry,
        )
        after = rollout.requeue_after
        return Result(requeue_after=after) if after is not None else Result()

    async def _grant_failed(self, key: JobKey, job: dict[str, Any], err: VaultError) -> Result:
        """Vault would not take the job's grant: nothing is registered (its sidecars could get
        no leaf); the status says why, and the key retries through its backoff."""
        log.warning("certificate grant failed; not registering", job=key.job_id, error=str(err))
        await self.record.write(
            key,
            job,
            [
                cond.condition(
                    ConditionType.SIDECAR_INJECTED,
                    False,
                    "GrantFailed",
                    f"Vault: the job's certificate names could not be granted ({err}); "
                    "retrying before the sidecar is injected",
                )
            ],
        )
        return Result(requeue=True)

    async def _grant(self, grant: Grant | None) -> None:
        if self.grants is not None and grant is not None:
            await self.grants.grant(grant.role, grant.names)

    async def _withdraw(self, key: JobKey) -> None:
        """The job is gone or no longer meshed: its tokens may issue nothing any more."""
        if self.grants is None:
            return
        try:
            role = job_role(self.config, key.namespace, key.job_id)
        except CannotBind:
            return  # no role can have existed for it
        await self.grants.withdraw(role)
