"""Intermediate CA rotation: new issuer, every meshed job's leaves re-issued in waves, old
issuer retired — resumable from the ``mesh-controller/rotation`` Variable at every step.

The old intermediate stays valid and trusted throughout (clients pin the root), so leaves of
both issuers verify while jobs roll: a service is never left without a valid certificate. A
wave writes each job a new version carrying the rotation nonce (``reissue``) and then waits —
Nomad rolls the job under its own update block — until every instance serves a leaf of the new
issuer and passes in Consul (``rotation_eval``). A failed deployment or a wave that does not
converge within ``wave_timeout`` stops the rotation with the reason in the Variable (read and
written through ``record``). Only when
no meshed instance serves a leaf of the old issuer is that issuer set read-only.

Drivers: ``controllerctl rotate-ca`` (``Rotator.rotate``) and the controller's periodic check
(``Rotator.tick``: resume an orphaned rotation, or start one when the default issuer expires
within ``rotate_before``). Both write the record with CAS, so two drivers never both proceed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog
from cryptography import x509

from controller.nomad.errors import Conflict
from controller.runtime.clock import Clock, SystemClock
from controller.tlsprobe import subject_key_id
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from reconcilers.injection.canary import manual_promotion
from reconcilers.injection.reissue import CannotReissue, carries, with_nonce
from reconcilers.instances.observe import observe_job
from reconcilers.ports import Catalog, JobLister, JobStore, PkiAdmin, TlsProbe, VariableStore
from reconcilers.rotation.inventory import meshed_service_jobs
from reconcilers.rotation.metrics import RotationMetrics
from reconcilers.rotation.record import Progress, RotationRecord
from reconcilers.rotation.state import RotationState, Stage, new_rotation
from reconcilers.rotation.verdict import DONE, FAILED, judge_job, old_leaves

log = structlog.get_logger(__name__)

MAX_EXTRA_WAVES = 3
WRITE_ATTEMPTS = 5


class RotationBusy(Exception):
    """Another live driver is rotating (the record's heartbeat is fresh)."""


@dataclass(frozen=True)
class RotationSettings:
    wave_size: int = 5
    wave_timeout: float = 900.0  # a wave that has not converged by then fails the rotation
    poll: float = 5.0
    stale_after: float = 120.0  # a record not written for this long has no live driver
    intermediate_ttl: float = 43800 * 3600.0
    rotate_before: float = 30 * 86400.0
    namespaces: tuple[str, ...] = ("*",)


class Rotator:
    def __init__(
        self,
        *,
        jobs: JobStore,
        lister: JobLister,
        consul: Catalog,
        probe: TlsProbe,
        pki: PkiAdmin,
        store: VariableStore,
        config: MeshConfig,
        owner: str,
        settings: RotationSettings | None = None,
        clock: Clock | None = None,
        metrics: RotationMetrics | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        self.jobs, self.lister, self.consul, self.probe = jobs, lister, consul, probe
        self.pki, self.store, self.config, self.owner = pki, store, config, owner
        self.settings = settings or RotationSettings()
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics
        self.record = RotationRecord(store, owner, self.clock, metrics, on_progress)

    @property
    def on_progress(self) -> Progress | None:
        """Told every write of the record (``controllerctl rotate-ca`` prints them)."""
        return self.record.on_progress

    @on_progress.setter
    def on_progress(self, progress: Progress | None) -> None:
        self.record.on_progress = progress

    async def read(self) -> RotationState | None:
        return await self.record.read()

    # --- entry points ---------------------------------------------------------------------

    async def due(self) -> tuple[bool, str]:
        """Whether the default issuer expires within ``rotate_before``, and a sentence."""
        current = await self.pki.default_issuer()
        left = (current.not_after - self.clock.now()).total_seconds()
        text = f"default issuer {current.issuer_id} expires {current.not_after.isoformat()}"
        return left <= self.settings.rotate_before, text

    async def rotate(self, trigger: str = "cli") -> RotationState:
        """Start a rotation, or resume the one in the record (orphaned, or failed)."""
        state = await self.read()
        now = self.clock.now()
        if state is not None and state.active:
            if not state.orphaned(self.owner, now, self.settings.stale_after):
                raise RotationBusy(f"rotation {state.id} is driven by {state.owner}")
            log.info("resuming rotation", id=state.id, stage=str(state.stage))
            return await self.run(state)
        if state is not None and state.stage is Stage.FAILED:
            log.info("retrying failed rotation", id=state.id, why=state.message)
            return await self.run(await self.record.save(state.retry(self.owner, now)))
        current = await self.pki.default_issuer()
        fresh = new_rotation(
            now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2),
            current.issuer_id,
            trigger=trigger,
            owner=self.owner,
            wave_size=self.settings.wave_size,
            now=now,
        )
        return await self.run(await self.record.save(fresh))

    async def tick(self) -> RotationState | None:
        """The controller's periodic check: resume an orphan, or rotate when due."""
        state = await self.read()
        now = self.clock.now()
        if state is not None and state.active:
            if state.orphaned(self.owner, now, self.settings.stale_after):
                return await self.run(state)
            return state
        if state is not None and state.stage is Stage.FAILED:
            return state  # an operator decides (controllerctl rotate-ca retries it)
        due, text = await self.due()
        if not due:
            return state
        if state is not None and state.stage is Stage.DONE:
            current = await self.pki.default_issuer()
            if current.issuer_id == state.new_issuer and state.finished_at is not None:
                age = (now - state.finished_at).total_seconds()
                if age < self.settings.rotate_before:
                    log.error("intermediate still due right after a rotation", detail=text)
                    return state  # bounded by the root's life: a root rotation is needed
        log.info("intermediate due for rotation", detail=text)
        return await self.rotate("auto")

    # --- the procedure --------------------------------------------------------------------

    async def run(self, state: RotationState) -> RotationState:
        """Drive ``state`` to done or failed. Raises RotationLost if another driver took over."""
        if state.stage is Stage.CREATING:
            state = await self._create(state)
        rounds = 0
        while state.active:
            if state.stage is Stage.ROLLING:
                state = await self._roll_wave(state)
            elif state.stage is Stage.RETIRING:
                leftovers = await self._still_on_old(state)
                if not leftovers:
                    await self.pki.retire(state.old_issuer)
                    state = await self.record.save(state.retired(self.clock.now()))
                    break
                rounds += 1
                if rounds > MAX_EXTRA_WAVES:
                    names = ", ".join(f"{ns}/{j}" for ns, j in leftovers)
                    msg = f"still on the old issuer after {MAX_EXTRA_WAVES} extra waves: {names}"
                    state = await self.record.save(state.failed(msg, self.clock.now()))
                    break
                state = await self.record.save(state.extra_wave(leftovers, self.clock.now()))
        log.info("rotation finished", id=state.id, stage=str(state.stage), message=state.message)
        return state

    async def _create(self, state: RotationState) -> RotationState:
        found = [i for i in await self.pki.issuers() if i.issuer_name == state.issuer_name]
        if found:
            new_id = found[0].issuer_id  # created before a crash: reuse, never a second one
        else:
            root = x509.load_pem_x509_certificate((await self.pki.root()).encode())
            left = (root.not_valid_after_utc - self.clock.now()).total_seconds() - 3600
            ttl = min(self.settings.intermediate_ttl, left)
            if ttl < 2 * 3600:
                msg = "the root CA expires too soon for a new intermediate; rotate the root"
                return await self.record.save(state.failed(msg, self.clock.now()))
            new_id = await self.pki.create_issuer(state.issuer_name, int(ttl))
        await self.pki.make_default(new_id)
        jobs = await self.meshed_jobs()
        return await self.record.save(state.created(new_id, jobs, self.clock.now()))

    async def meshed_jobs(self) -> list[JobKey]:
        """Every meshed, running service job in the watched namespaces."""
        return await meshed_service_jobs(
            self.lister, self.jobs, self.settings.namespaces, self.config
        )

    async def _key_ids(self, state: RotationState) -> tuple[str, str, str]:
        """(anchors PEM, old issuer's key id, new issuer's key id)."""
        by_id = {i.issuer_id: i for i in await self.pki.issuers()}

        def ski(issuer_id: str) -> str:
            info = by_id.get(issuer_id)
            if info is None:
                return ""
            return subject_key_id(x509.load_pem_x509_certificate(info.certificate.encode()))

        return await self.pki.root(), ski(state.old_issuer), ski(state.new_issuer)

    async def _write_nonce(self, state: RotationState, key: JobKey) -> RotationState:
        for _ in range(WRITE_ATTEMPTS):
            job = await self.jobs.get_job(key[1], key[0])
            if job is None or carries(job, state.nonce, self.config):
                return state
            waits = manual_promotion(job, self.config)
            if waits:
                log.info("rotation skips a job", job=key[1], namespace=key[0], reason=waits)
                return await self.record.save(
                    state.skip(key, f"skipped: {waits}", self.clock.now()),
                    f"{key[0]}/{key[1]}: skipped: {waits}",
                )
            try:
                desired = with_nonce(job, state.nonce, self.config)
            except CannotReissue:
                return state  # no longer meshed: nothing of ours to re-issue
            try:
                answer = await self.jobs.register_job(
                    desired, enforce_index=int(job.get("JobModifyIndex") or 0)
                )
            except Conflict:
                continue  # the job changed meanwhile (a user, the mesh reconciler): re-read
            index = int(answer.get("JobModifyIndex") or 0)
            return await self.record.save(
                state.wrote(key, index, self.clock.now()), f"{key[0]}/{key[1]}: new version"
            )
        raise Conflict(f"{key[0]}/{key[1]}: the job kept changing while writing the nonce")

    async def _roll_wave(self, state: RotationState) -> RotationState:
        wave = [k for k in state.current_wave() if k not in state.done]
        number = f"wave {state.wave + 1}/{len(state.waves)}"
        for key in wave:
            state = await self._write_nonce(state, key)
        wave = [k for k in wave if not state.is_skipped(k)]
        anchors, _, new_ski = await self._key_ids(state)
        deadline = self.clock.monotonic() + self.settings.wave_timeout
        pending = list(wave)
        while True:
            reasons: list[str] = []
            for key in list(pending):
                seen = await observe_job(
                    key,
                    jobs=self.jobs,
                    consul=self.consul,
                    probe=self.probe,
                    anchors_pem=anchors,
                    config=self.config,
                )
                deployment = await self.jobs.latest_deployment(key[1], key[0])
                verdict = judge_job(seen, new_ski, deployment, state.written_index(key))
                if verdict.state == FAILED:
                    msg = f"{number} failed: {key[0]}/{key[1]}: {verdict.reason}"
                    return await self.record.save(state.failed(msg, self.clock.now()))
                if verdict.state == DONE:
                    pending.remove(key)
                    state = await self.record.save(
                        state.job_done(key, self.clock.now()), f"{key[1]}: {verdict.reason}"
                    )
                else:
                    reasons.append(f"{key[1]}: {verdict.reason}")
            if not pending:
                return await self.record.save(state.wave_finished(self.clock.now()))
            if self.clock.monotonic() >= deadline:
                msg = (
                    f"{number} did not converge within {self.settings.wave_timeout:g}s: "
                    + "; ".join(reasons)
                )
                return await self.record.save(state.failed(msg, self.clock.now()))
            state = await self.record.save(state, f"{number}: " + "; ".join(reasons))
            await self.clock.sleep(self.settings.poll)

    async def _still_on_old(self, state: RotationState) -> list[JobKey]:
        anchors, old_ski, _ = await self._key_ids(state)
        if not old_ski:
            return []
        left: list[JobKey] = []
        for key in await self.meshed_jobs():
            if state.is_skipped(key):
                continue  # left out on purpose (canaries a human promotes), said in the record
            seen = await observe_job(
                key,
                jobs=self.jobs,
                consul=self.consul,
                probe=self.probe,
                anchors_pem=anchors,
                config=self.config,
            )
            if old_leaves(seen, old_ski):
                left.append(key)
        return left
