"""The calls of one meshed job, checked: each upstream edge against its catalog, each allow-list
name against the names the mesh knows.

The sidecar reads an upstream's instances from the catalog the entry names (Consul's
``service`` or Nomad's ``nomadService``), so the same catalog answers here, one read per
(provider, service) of the job, and ``reconcilers.instances.edge_findings`` judges it as the
sidecar's template would; each usable instance then gets the verified TLS handshake the
caller's sidecar would make, so an upstream whose instances serve a chain the mesh root does
not verify is ``handshake failed``, with the error. A catalog that cannot answer, or whose ACLs
hide the service from the controller's token, leaves its edges ``unknown``: never ``empty``,
and never a phase change on its own (an Unknown fact keeps a verified job Ready).

Cost: one catalog read per upstream service per job and health interval, and one probe per
usable instance per health interval however many callers it has: :class:`SharedProbes` keeps
each instance's result for the interval, so a popular upstream is not probed once per caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.consul.wire import HealthEntry
from controller.runtime.clock import Clock
from controller.tlsprobe import ProbeOutcome, ProbeResult, ProbeTarget
from crds_equivalent.config import MeshConfig
from crds_equivalent.status import Condition, ConditionType, EdgeRecord
from reconcilers.conditions import PURE_CLIENT, condition
from reconcilers.injection.edges import AllowList, UpstreamEdge, allow_lists, upstream_edges
from reconcilers.injection.userspecs import UserSpecs, user_specs
from reconcilers.instances.catalogs import CatalogProblem, read_service
from reconcilers.instances.edge_findings import (
    Handshakes,
    allow_findings,
    edge_records,
    upstreams_condition,
    usable,
)
from reconcilers.ports import Catalog, NativeCatalog, TlsProbe

# A failure a mesh client would see too; an instance the controller cannot reach is no evidence.
_FAILED = (ProbeOutcome.HANDSHAKE_FAILED, ProbeOutcome.BAD_CERTIFICATE)


@dataclass(frozen=True)
class JobCalls:
    """The job's upstream edges and allow lists, from the user's spec (not the injected job)."""

    edges: tuple[UpstreamEdge, ...] = ()
    allow: tuple[AllowList, ...] = ()


@dataclass(frozen=True)
class CallsVerdict:
    """What health records about the job's calls."""

    records: tuple[EdgeRecord, ...]
    condition: Condition
    warnings: tuple[str, ...]


def pure_client_conditions() -> list[Condition]:
    """CertValid, ConsulHealthy and PlaintextRetired of a pure client: true of nothing (it
    registers, serves and retires nothing), each saying so with the reason ``PureClient``, by
    which ``judge`` knows that the client's one health fact is ``UpstreamsHealthy``. Written
    rather than left out so that a job that stopped fronting a service does not keep the
    conditions it had as a server."""
    why = "a pure client: it fronts no service, so {}"
    return [
        condition(ConditionType.CERT_VALID, True, PURE_CLIENT, why.format("serves no chain")),
        condition(ConditionType.CONSUL_HEALTHY, True, PURE_CLIENT, why.format("registers nothing")),
        condition(
            ConditionType.PLAINTEXT_RETIRED,
            True,
            PURE_CLIENT,
            why.format("has no plaintext registration"),
        ),
    ]


class SharedProbes:
    """A TlsProbe that keeps each result for ``ttl`` seconds (keyed by target and anchors):
    the callers of one upstream share its instances' handshakes within a health interval."""

    def __init__(self, probe: TlsProbe, clock: Clock, ttl: float, limit: int = 10_000) -> None:
        self.probe, self.clock, self.ttl, self.limit = probe, clock, ttl, limit
        self._kept: dict[tuple[ProbeTarget, str], tuple[float, ProbeResult]] = {}

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]:
        now = self.clock.monotonic()
        fresh = {
            t: kept[1]
            for t in targets
            if (kept := self._kept.get((t, anchors_pem))) is not None and now - kept[0] < self.ttl
        }
        missing = list(dict.fromkeys(t for t in targets if t not in fresh))
        if missing:
            results = await self.probe.probe_many(missing, anchors_pem)
            if len(self._kept) + len(missing) > self.limit:
                self._kept.clear()  # a bound, not an LRU: the next interval refills it
            for target, result in zip(missing, results, strict=True):
                fresh[target] = result
                self._kept[(target, anchors_pem)] = (now, result)
        return [fresh[t] for t in targets]


def job_calls(job: Mapping[str, Any], config: MeshConfig) -> JobCalls:
    """The edges and allow lists of the meshed groups; empty for an unmeshed or invalid job
    (the mesh reconciler reports that one)."""
    parsed = user_specs(job, config)
    return job_calls_of(parsed) if parsed is not None else JobCalls()


def job_calls_of(parsed: UserSpecs) -> JobCalls:
    """``job_calls`` of a job already un-injected and parsed (``user_specs``)."""
    user, specs = parsed.user, parsed.specs
    return JobCalls(tuple(upstream_edges(user, specs)), tuple(allow_lists(user, specs)))


async def read_upstreams(
    edges: Sequence[UpstreamEdge],
    namespace: str,
    *,
    consul: Catalog | None,
    native: NativeCatalog | None,
) -> tuple[dict[tuple[str, str], Sequence[HealthEntry]], dict[tuple[str, str], str]]:
    """(entries, why unknown) by (provider, service): each upstream read once, in the job's
    namespace (where the sidecar's ``nomadService`` looks). A Consul answer that ACLs filtered
    counts only when it shows a usable instance; otherwise the service is unknown."""
    entries: dict[tuple[str, str], Sequence[HealthEntry]] = {}
    unknown: dict[tuple[str, str], str] = {}
    for provider, service in sorted({(e.provider, e.service) for e in edges}):
        try:
            found, filtered = await read_service(
                provider, service, namespace, consul=consul, native=native
            )
        except CatalogProblem as problem:
            unknown[(provider, service)] = f"upstream {service}: {problem.message}"
            continue
        if filtered and not any(e.passing for e in found):
            unknown[(provider, service)] = (
                f"upstream {service}: the Consul token cannot read it ({filtered})"
            )
            continue
        entries[(provider, service)] = found
    return entries, unknown


async def probe_upstreams(
    entries: Mapping[tuple[str, str], Sequence[HealthEntry]],
    probe: TlsProbe,
    anchors_pem: str,
    domain: str,
) -> dict[tuple[str, str], Handshakes]:
    """A verified handshake with every usable instance of every upstream, as the caller's
    sidecar makes it (chain against the mesh root, name ``<service>.<domain>``), in one batch;
    by (provider, service): which instances failed, and the first failure."""
    owners: list[tuple[tuple[str, str], str]] = []
    targets: list[ProbeTarget] = []
    for key, found in sorted(entries.items()):
        for entry in (e for e in found if usable(e, key[0])):
            owners.append((key, entry.service_id))
            targets.append(ProbeTarget(entry.effective_address, entry.port, f"{key[1]}.{domain}"))
    if not targets:
        return {}
    failed: dict[tuple[str, str], list[str]] = {}
    errors: dict[tuple[str, str], str] = {}
    for (key, service_id), result in zip(
        owners, await probe.probe_many(targets, anchors_pem), strict=True
    ):
        if result.outcome in _FAILED:
            failed.setdefault(key, []).append(service_id)
            errors.setdefault(key, f"{result.target}: {result.detail}")
    return {
        key: Handshakes(frozenset(failed.get(key, ())), errors.get(key, ""))
        for key in dict.fromkeys(k for k, _ in owners)
    }


def judge_calls(
    calls: JobCalls,
    entries: Mapping[tuple[str, str], Sequence[HealthEntry]],
    unknown: Mapping[tuple[str, str], str],
    known_names: frozenset[str] | None,
    handshakes: Mapping[tuple[str, str], Handshakes] | None = None,
) -> CallsVerdict:
    """Records, ``UpstreamsHealthy`` and the allow warnings (none when the names are unknown:
    a warning must not come from a listing that failed)."""
    records = tuple(edge_records(calls.edges, entries, unknown, handshakes))
    warnings: tuple[str, ...] = ()
    if known_names is not None:
        warnings = tuple(f.message for f in allow_findings(calls.allow, set(known_names)))
    return CallsVerdict(records, upstreams_condition(records), warnings)
