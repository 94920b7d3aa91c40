"""CertReconciler: leaves that missed their renewal get a fresh certificate, step by step.

Per meshed job, periodically (``interval``): look at the leaf each allocation serves
(``observe``), and walk the ladder of ``remediation``: restart the sidecar task of the stale
allocations through the Nomad client API, then — if that did not replace the leaf — write a new
job version with a rotation nonce, then stop and say why. Every action is recorded in the
job's status (``last_remediation``, and ``last_error`` when giving up), counted in
``mesh_remediations_total{kind}``, and rate-limited across all jobs (``budget`` actions per
``budget_window`` seconds), so a fleet-wide cause (Vault down for a day) cannot turn into a
restart storm. Nothing is done while Vault's CA cannot be read: a restarted sidecar whose
template cannot render would stop serving altogether.

Wiring (composition root)::

    certs = CertReconciler(
        jobs=nomad_jobs, tasks=nomad_jobs, statuses=status_store, consul=consul_client,
        probe=TlsProber(), trust=vault_trust, config=mesh_config, registry=registry,
    )
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry

from controller.nomad.errors import Conflict, NomadError, NotFound
from controller.runtime.clock import Clock, SystemClock
from controller.runtime.reconcile import Result
from controller.runtime.standing import Standing
from controller.vault.trust import TrustUnavailable
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import MeshStatus
from reconcilers.certs.metrics import CertMetrics
from reconcilers.certs.remediation import (
    REISSUE,
    RESTART,
    GiveUp,
    Healthy,
    Policy,
    Record,
    Reissue,
    Restart,
    Wait,
    decide,
    stale_leaves,
)
from reconcilers.injection import jobview
from reconcilers.injection.reissue import CannotReissue, with_nonce
from reconcilers.instances.handshakes import HandshakeMemory
from reconcilers.instances.observe import observe_job
from reconcilers.ports import (
    Catalog,
    JobStore,
    NativeCatalog,
    StatusStore,
    TaskControl,
    TlsProbe,
    TrustSource,
)

log = structlog.get_logger(__name__)


def remediation_nonce(now: datetime) -> str:
    """Nonces of remediations say when they were made (UTC, to the second)."""
    return "renew-" + now.strftime("%Y%m%dT%H%M%SZ")


class CertReconciler:
    """Detect leaves that missed their renewal and remediate them, rate-limited."""

    def __init__(
        self,
        jobs: JobStore,
        tasks: TaskControl,
        statuses: StatusStore,
        consul: Catalog | None,
        probe: TlsProbe,
        trust: TrustSource,
        config: MeshConfig,
        *,
        native: NativeCatalog | None = None,
        clock: Clock | None = None,
        interval: float = 300.0,
        policy: Policy | None = None,
        budget: int = 10,
        budget_window: float = 60.0,
        registry: CollectorRegistry | None = None,
        handshakes: HandshakeMemory | None = None,
    ) -> None:
        self.jobs = jobs
        self.tasks = tasks
        self.statuses = statuses
        self.consul = consul
        self.native = native
        self.probe = probe
        # the health check's verified handshakes (None: every instance is handshaken each pass)
        self.handshakes = handshakes
        self.trust = trust
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.interval = interval
        self.policy = policy or Policy()
        self.budget = budget
        self.budget_window = budget_window
        self.metrics = CertMetrics(registry if registry is not None else CollectorRegistry())
        self._spent: deque[float] = deque()
        # the catalog problem each job's last pass warned about: warned once, not every pass
        self.catalog_problems: Standing[tuple[str, str]] = Standing()

    async def reconcile(self, key: JobKey) -> Result:
        namespace, job_id = key
        # last_remediation in it decides the next step: only this reconciler writes it, so the
        # store's copy (kept current by our own writes, re-read when a LIST shows it moved) is it.
        # Asked before the job is decoded: a job not injected (yet) has no leaves to watch, and
        # its injection is a register whose Job event brings it back here.
        status = await self.statuses.get(namespace, job_id)
        if status is None or not status.sidecar_injected:
            self.catalog_problems.end(key)
            return Result()
        job = await self.jobs.get_job(job_id, namespace)
        if job is None or jobview.is_stopped(job):
            self.catalog_problems.end(key)
            return Result()
        try:
            trust = await self.trust.get()
        except TrustUnavailable as exc:
            log.warning("mesh CA unknown; no remediation", job=job_id, error=str(exc))
            return Result(requeue_after=self.interval)
        seen = await observe_job(
            key,
            jobs=self.jobs,
            consul=self.consul,
            native=self.native,
            probe=self.probe,
            anchors_pem=trust.anchors_pem,
            config=self.config,
            job=job,
            problems=self.catalog_problems,
            handshakes=self.handshakes,
            issuer_key_id=trust.default.key_id if trust.default is not None else "",
        )
        if not seen.meshed or seen.findings is None:
            return Result(requeue_after=self.interval)
        now = self.clock.now()
        stale = stale_leaves(seen.probed, now, self.policy.stale_fraction)
        decision = decide(stale, Record.loads(status.last_remediation), now, self.policy)
        if isinstance(decision, Healthy):
            return Result(requeue_after=self.interval)
        if isinstance(decision, Wait):
            return Result(requeue_after=max(1.0, min(self.interval, decision.seconds)))
        if isinstance(decision, GiveUp):
            log.error("remediation exhausted", job=job_id, namespace=namespace, why=decision.reason)
            await self._record(key, None, decision.reason)
            return Result(requeue_after=decision.retry_after)
        if not self._take_budget():
            log.warning("remediation budget spent; deferring", job=job_id, namespace=namespace)
            return Result(requeue_after=self.budget_window)
        if isinstance(decision, Restart):
            return await self._restart(key, decision, now)
        return await self._reissue(key, job, decision, now)

    def _take_budget(self) -> bool:
        at = self.clock.monotonic()
        while self._spent and at - self._spent[0] >= self.budget_window:
            self._spent.popleft()
        if len(self._spent) >= self.budget:
            return False
        self._spent.append(at)
        return True

    async def _restart(self, key: JobKey, decision: Restart, now: datetime) -> Result:
        namespace, job_id = key
        restarted: list[str] = []
        for leaf in decision.leaves:
            try:
                await self.tasks.restart_task(leaf.alloc_id, keys.SIDECAR_TASK, namespace)
            except NotFound:
                continue  # the allocation is gone; its replacement issues its own leaf
            except NomadError as exc:
                log.warning("sidecar restart failed", alloc=leaf.alloc_id, error=str(exc))
                continue
            restarted.append(leaf.alloc_id)
        self.metrics.remediated(RESTART, len(restarted))
        log.info("sidecars restarted", job=job_id, namespace=namespace, reason=decision.reason)
        record = Record(
            kind=RESTART,
            at=now,
            allocs=tuple(restarted),
            serials={s.alloc_id: s.serial for s in decision.leaves},
            reason=decision.reason,
        )
        await self._record(key, record, "")
        return Result(requeue_after=max(1.0, min(self.interval, self.policy.restart_grace)))

    async def _reissue(
        self, key: JobKey, job: dict[str, object], decision: Reissue, now: datetime
    ) -> Result:
        namespace, job_id = key
        nonce = remediation_nonce(now)
        try:
            desired = with_nonce(job, nonce, self.config)
        except CannotReissue as exc:
            await self._record(key, None, f"cannot force a re-issue: {exc}")
            return Result(requeue_after=self.interval)
        try:
            await self.jobs.register_job(desired, enforce_index=int(str(job["JobModifyIndex"])))
        except Conflict:
            return Result(requeue=True)  # the job changed: look again, through the key's backoff
        self.metrics.remediated(REISSUE)
        log.info("re-issue forced", job=job_id, namespace=namespace, nonce=nonce)
        record = Record(
            kind=REISSUE,
            at=now,
            allocs=tuple(s.alloc_id for s in decision.leaves),
            serials={s.alloc_id: s.serial for s in decision.leaves},
            nonce=nonce,
            reason=decision.reason,
        )
        await self._record(key, record, "")
        return Result(requeue_after=max(1.0, min(self.interval, self.policy.reissue_grace)))

    async def _record(self, key: JobKey, record: Record | None, error: str) -> None:
        """Write ``last_error`` (and ``last_remediation`` when an action was taken) onto the
        record as it is now, leaving every other reconciler's fields alone; nothing on a record
        that no longer shows the sidecar injected."""
        namespace, job_id = key
        update: dict[str, str] = {"last_error": error}
        if record is not None:
            update["last_remediation"] = record.dumps()

        def derive(previous: MeshStatus | None) -> MeshStatus | None:
            if previous is None or not previous.sidecar_injected:
                return None
            return previous.model_copy(update=update)

        await self.statuses.update(namespace, job_id, derive)
