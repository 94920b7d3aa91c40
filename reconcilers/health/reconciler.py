"""HealthReconciler: is a meshed job actually served over verified TLS, and registered so?

The MeshReconciler makes the job *say* the right thing; this one checks the world *does* it:
health of the TLS registrations in each service's own catalog (Consul, or Nomad's for
``provider = "nomad"``; the condition keeps its name ``ConsulHealthy``, an interface),
retirement of the plaintext ones, and a TLS handshake with every instance verified against
the mesh root. It only looks at jobs whose status already shows the sidecar injected (it never
fights the MeshReconciler), never writes the job, and takes no destructive action on any
answer — least of all on a catalog not answering, which is Unknown, not unhealthy. It runs on
Allocation events and re-checks every ``interval`` seconds.

It also checks the job's calls (``reconcilers.health.upstreams``): each upstream edge from the
catalog its entry names, handshaken as the caller's sidecar would (``edges``,
``UpstreamsHealthy``), and each ``mesh.tls.allow`` name against the names the mesh knows
(``warnings``, never a phase change). A PURE CLIENT (meshed, fronting nothing, calling
upstreams) is judged on its calls alone: its served facts hold vacuously (reason
``PureClient``), so it reaches Ready once its upstreams are healthy.

Wiring (composition root)::

    health = HealthReconciler(
        jobs=NomadJobs(...), statuses=StatusStore(...), consul=ConsulClient.from_settings(...),
        probe=TlsProber(), trust=VaultTrust(vault_client, root_mount=..., int_mount=...),
        config=mesh_config, names=MeshNames(cached_jobs, cached_jobs, mesh_config, clock, ttl=...),
        interval=settings.controller.health_interval, registry=registry,
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from controller.runtime.clock import Clock, SystemClock
from controller.runtime.reconcile import Result
from controller.runtime.standing import Standing
from controller.vault.trust import MeshTrust, TrustUnavailable
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import (
    Condition,
    EdgeRecord,
    MeshStatus,
)
from reconcilers import conditions as cond
from reconcilers import renewal
from reconcilers.health.directory import MeshNames
from reconcilers.health.metrics import HealthMetrics
from reconcilers.health.upstreams import (
    CallsVerdict,
    JobCalls,
    SharedProbes,
    job_calls_of,
    judge_calls,
    probe_upstreams,
    pure_client_conditions,
    read_upstreams,
)
from reconcilers.health.verdicts import (
    CertVerdict,
    cert_verdict,
    consul_conditions,
)
from reconcilers.injection import jobview
from reconcilers.injection.userspecs import user_specs
from reconcilers.instances.catalogs import CONSUL_UNAVAILABLE, CatalogProblem, read_catalogs
from reconcilers.instances.handshakes import HandshakeMemory
from reconcilers.instances.matching import (
    ConsulFindings,
    FrontedPort,
    consul_findings,
    fronted_ports_of,
    running_allocations,
)
from reconcilers.instances.observe import instance_allocations
from reconcilers.ports import Catalog, JobStore, NativeCatalog, StatusStore, TlsProbe, TrustSource

log = structlog.get_logger(__name__)


class HealthReconciler:
    """Verify Consul registration and served certificates of one meshed job."""

    def __init__(
        self,
        jobs: JobStore,
        statuses: StatusStore,
        consul: Catalog | None,
        probe: TlsProbe,
        trust: TrustSource,
        config: MeshConfig,
        *,
        native: NativeCatalog | None = None,
        names: MeshNames | None = None,
        clock: Clock | None = None,
        interval: float = 30.0,
        handshake_max_age: float = 0.0,
        handshakes: HandshakeMemory | None = None,
        min_remaining_fraction: float = renewal.MIN_REMAINING_FRACTION,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not 0.0 <= min_remaining_fraction < 1.0:
            raise ValueError("min_remaining_fraction must be in [0, 1)")
        self.jobs = jobs
        self.statuses = statuses
        self.consul = consul
        self.native = native
        self.names = names  # None: allow-list names are not checked
        self.probe = probe
        self.trust = trust
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.interval = interval
        # the callers of one upstream share its instances' handshakes within an interval
        self.upstream_probe = SharedProbes(probe, self.clock, ttl=interval)
        # the served instances' verified handshakes, reused while nothing could change them
        # (shared with the certs reconciler when the composition root gives one)
        self.handshakes = (
            handshakes
            if handshakes is not None
            else HandshakeMemory(probe, self.clock, max_age=handshake_max_age)
        )
        self.min_remaining_fraction = min_remaining_fraction
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = HealthMetrics(self.registry)
        # the catalog problem each job's last pass warned about: warned once, not every pass
        self.catalog_problems: Standing[JobKey] = Standing()

    async def reconcile(self, key: JobKey) -> Result:
        namespace, job_id = key
        # A gate only: _record derives again from the record as it is when it writes. Asked
        # first because it is the cheap question (the record is in memory; the job would be
        # decoded and un-injected): a job the mesh reconciler has not injected (yet) has no
        # health to judge, and its injection is a register whose Job event brings it back here.
        # At a cold start that is every job's first pass.
        gate = await self.statuses.peek(namespace, job_id)
        if gate is None or not gate.sidecar_injected:
            self._forget(key)
            return Result()
        job = await self.jobs.get_job(job_id, namespace)
        # un-injected and parsed once for both questions (each would otherwise do it again)
        parsed = user_specs(job, self.config) if job is not None else None
        ports = fronted_ports_of(parsed, self.config) if parsed is not None else []
        calls = job_calls_of(parsed) if parsed is not None else JobCalls()
        if job is None or not (ports or calls.edges) or jobview.is_stopped(job):
            self._forget(key)
            return Result()

        if ports:
            served, verdict = await self._served(job, key, ports)
        else:  # a pure client: nothing registered, served or retired; its calls are its facts
            self._forget(key)
            served = pure_client_conditions()
            verdict = CertVerdict(served[0])
        judged = await self._calls(calls, namespace)
        await self._record(key, [*served, judged.condition], verdict, judged)
        return Result(requeue_after=self.interval)

    def _forget(self, key: JobKey) -> None:
        """What is kept per job that no longer has served health to judge."""
        self.metrics.forget(*key)
        self.catalog_problems.end(key)
        self.handshakes.forget(key)

    async def _calls(self, calls: JobCalls, namespace: str) -> CallsVerdict:
        """The job's upstream edges from their catalogs and handshakes, its allow names
        against the mesh's (no handshake judged while Vault does not say what the root is)."""
        entries, unknown = await read_upstreams(
            calls.edges, namespace, consul=self.consul, native=self.native
        )
        handshakes = {}
        if entries:
            trust, _ = await self._trust()
            if trust is not None:
                handshakes = await probe_upstreams(
                    entries, self.upstream_probe, trust.anchors_pem, self.config.domain
                )
        names = await self.names.names() if self.names is not None and calls.allow else None
        return judge_calls(calls, entries, unknown, names, handshakes)

    async def _served(
        self, job: dict[str, Any], key: JobKey, ports: Sequence[FrontedPort]
    ) -> tuple[list[Condition], CertVerdict]:
        """CertValid, ConsulHealthy and PlaintextRetired of a job that fronts services."""
        namespace, job_id = key
        allocs = running_allocations(await instance_allocations(self.jobs, job, job_id, namespace))
        found, problem = await self._catalogs(key, ports, allocs)
        trust, trust_problem = await self._trust()
        version = jobview.job_modify_index(job)
        verdict = await self._certificates(key, version, found, trust, trust_problem, problem)

        if trust is not None:
            self.metrics.set_ca(trust.ca_not_after)
        if found is not None and trust is not None:
            self.metrics.set_leaves(namespace, job_id, verdict.per_service)
        healthy, retired = consul_conditions(
            found,
            problem.message if problem else "",
            reason=problem.reason if problem else CONSUL_UNAVAILABLE,
        )
        return [verdict.condition, healthy, retired], verdict

    async def _catalogs(
        self, key: JobKey, ports: Sequence[FrontedPort], allocs: dict[str, list[str]]
    ) -> tuple[ConsulFindings | None, CatalogProblem | None]:
        """Each fronted service read from its own catalog (Consul or Nomad's), matched. A
        catalog problem is a warning when it starts or its reason changes, debug while it
        stands (the job's ConsulHealthy condition keeps saying so)."""
        try:
            answer = await read_catalogs(ports, key[0], consul=self.consul, native=self.native)
        except CatalogProblem as problem:
            say = log.warning if self.catalog_problems.news(key, problem.reason) else log.debug
            say("service catalog unknown; health unknown", reason=problem.reason,
                error=problem.message)  # fmt: skip
            return None, problem
        self.catalog_problems.end(key)
        if answer.filtered:
            log.warning("consul filtered the health read: the token cannot read",
                        services=answer.filtered)  # fmt: skip
        return consul_findings(ports, allocs, answer.health, answer.filtered), None

    async def _trust(self) -> tuple[MeshTrust | None, str]:
        try:
            return await self.trust.get(), ""
        except TrustUnavailable as exc:
            log.warning("mesh CA unknown; certificates not judged", error=str(exc))
            return None, str(exc)

    async def _certificates(
        self,
        key: JobKey,
        version: int,
        found: ConsulFindings | None,
        trust: MeshTrust | None,
        trust_problem: str,
        problem: CatalogProblem | None = None,
    ) -> CertVerdict:
        now = self.clock.now()
        if found is None:
            reason = problem.reason if problem else CONSUL_UNAVAILABLE
            return cert_verdict(
                [],
                trust,
                now,
                unknown_reason=reason,
                unknown_message="instance addresses come from Consul, which did not answer"
                if reason == CONSUL_UNAVAILABLE
                else f"instance addresses come from the service catalog: "
                f"{problem.message if problem else reason}",
            )
        if trust is None:
            return cert_verdict([], None, now, unknown_message=trust_problem)
        if found.hidden and not found.instances:
            return cert_verdict(
                [],
                trust,
                now,
                unknown_reason="ConsulFiltered",
                unknown_message="instance addresses come from Consul, whose ACLs hide them from "
                "the controller's token",
            )
        issuer = trust.default.key_id if trust.default is not None else ""
        shook = await self.handshakes.results(
            key, version, found.instances, trust.anchors_pem, issuer_key_id=issuer
        )
        self.metrics.count_handshakes(shook.made, shook.reused)
        return cert_verdict(
            list(zip(found.instances, shook.results, strict=True)),
            trust,
            self.clock.now(),
            min_remaining_fraction=self.min_remaining_fraction,
        )

    async def _record(
        self, key: JobKey, updates: list[Condition], verdict: CertVerdict, calls: CallsVerdict
    ) -> None:
        """Write the health conditions, ``cert_not_after``, ``issuer``, ``edges`` and
        ``warnings`` onto the record as it
        is now: probes take time, and whatever the MeshReconciler recorded meanwhile must
        survive ours (``update`` derives from the record as this process knows it, pending
        changes included, and again on a CAS conflict). A record that no longer shows the
        sidecar injected is left alone."""
        namespace, job_id = key
        derive = HealthFields(
            updates=tuple(updates),
            now=self.clock.now(),
            not_after=verdict.not_after.isoformat() if verdict.not_after else None,
            issuer=verdict.issuer,
            edges=calls.records,
            warnings=calls.warnings,
        )
        await self.statuses.update(namespace, job_id, derive)


@dataclass(frozen=True, slots=True)
class HealthFields:
    """The derive function of one health write: the health conditions, the leaf facts and the
    call edges, restated onto whatever record it is applied to (``StatusStore.update``, and
    again on a lost CAS). It keeps only what it writes, not the verdicts it came from: the
    store holds every pending one until its record is written, under load until the job's
    rollout ends, for thousands of jobs at once."""

    updates: tuple[Condition, ...]
    now: datetime
    not_after: str | None  # None: keep the recorded one
    issuer: str  # "": keep the recorded one
    edges: tuple[EdgeRecord, ...]
    warnings: tuple[str, ...]

    def __call__(self, previous: MeshStatus | None) -> MeshStatus | None:
        if previous is None or not previous.sidecar_injected:
            return None  # a record that no longer shows the sidecar injected is left alone
        return cond.restate(previous, self.updates, self.now).model_copy(
            update={
                "cert_not_after": self.not_after or previous.cert_not_after,
                "issuer": self.issuer or previous.issuer,
                "edges": self.edges,
                "warnings": self.warnings,
            }
        )
