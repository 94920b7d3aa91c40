"""Which leaf each allocation of a meshed job serves right now, seen the way a client sees it.

Remediation and intermediate rotation both act per allocation on what the sidecars actually
serve (not on what Vault issued): this gathers the job's running allocations, their TLS
registrations in Consul and one verified handshake with each, reusing the health check's pure
matching (``health_eval``) so both agree on what an instance is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from controller.runtime.standing import Standing
from controller.tlsprobe import ProbeResult
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from reconcilers.injection import jobview
from reconcilers.instances.catalogs import CONSUL_UNAVAILABLE, CatalogProblem, read_catalogs
from reconcilers.instances.handshakes import HandshakeMemory
from reconcilers.instances.matching import (
    ConsulFindings,
    FrontedPort,
    Instance,
    consul_findings,
    fronted_ports,
    running_allocations,
)
from reconcilers.ports import Catalog, JobStore, NativeCatalog, TlsProbe

log = structlog.get_logger(__name__)


@dataclass
class Observation:
    """One look at a job: ``findings`` is None when a catalog did not answer (``problem`` says)."""

    job: dict[str, Any] | None
    ports: list[FrontedPort] = field(default_factory=list)
    allocations: list[dict[str, Any]] = field(default_factory=list)
    running: dict[str, list[str]] = field(default_factory=dict)
    findings: ConsulFindings | None = None
    probed: list[tuple[Instance, ProbeResult]] = field(default_factory=list)
    problem: str = ""

    @property
    def meshed(self) -> bool:
        return self.job is not None and bool(self.ports)

    @property
    def running_count(self) -> int:
        return sum(len(ids) for ids in self.running.values())


async def instance_allocations(
    jobs: JobStore, job: Mapping[str, Any], job_id: str, namespace: str
) -> list[dict[str, Any]]:
    """The allocations that are this job's instances: its own, or for a periodic or
    parameterized parent (which never has any) its live children's, which carry the parent's
    sidecar and register the parent's services. So one status record — the parent's — covers
    every instance the mesh put there; children have no record of their own."""
    if jobview.launches_children(job):
        return await jobs.child_allocations(job_id, namespace)
    return await jobs.job_allocations(job_id, namespace)


async def observe_job(
    key: tuple[str, str],
    *,
    jobs: JobStore,
    consul: Catalog | None,
    probe: TlsProbe,
    anchors_pem: str,
    config: MeshConfig,
    job: Mapping[str, Any] | None = None,
    native: NativeCatalog | None = None,
    problems: Standing[tuple[str, str]] | None = None,
    handshakes: HandshakeMemory | None = None,
    issuer_key_id: str = "",
) -> Observation:
    """Allocations, catalog registrations (Consul's or Nomad's, per service provider) and
    probe results of one job (no writes). With ``problems`` (a reconciler's memory of the
    catalog problem each job stands in), a catalog problem is a warning when it starts or its
    reason changes and debug while it stands; without, a warning every time. With
    ``handshakes``, verified handshakes that still hold are reused (``HandshakeMemory``; a leaf
    of another issuer than ``issuer_key_id``, the default one, never); without, every instance
    is handshaken."""
    namespace, job_id = key
    current = dict(job) if job is not None else await jobs.get_job(job_id, namespace)
    if current is None:
        return Observation(job=None)
    ports = fronted_ports(current, config)
    seen = Observation(job=current, ports=ports)
    if not ports:
        return seen
    seen.allocations = await instance_allocations(jobs, current, job_id, namespace)
    seen.running = running_allocations(seen.allocations)
    try:
        answer = await read_catalogs(ports, namespace, consul=consul, native=native)
    except CatalogProblem as problem:
        news = problems is None or problems.news(key, problem.reason)
        say = log.warning if news else log.debug
        say("service catalog unknown; leaves not observed", job=job_id, error=problem.message)
        seen.problem = (
            f"Consul did not answer: {problem.message}"
            if problem.reason == CONSUL_UNAVAILABLE
            else problem.message
        )
        return seen
    if problems is not None:
        problems.end(key)
    seen.findings = consul_findings(ports, seen.running, answer.health, answer.filtered)
    instances = seen.findings.instances
    if handshakes is not None:
        version = jobview.job_modify_index(current)
        shook = await handshakes.results(
            JobKey.of(*key), version, instances, anchors_pem, issuer_key_id=issuer_key_id
        )
        results = shook.results
    else:
        results = await probe.probe_many([i.target for i in instances], anchors_pem)
    seen.probed = list(zip(instances, results, strict=True))
    return seen
