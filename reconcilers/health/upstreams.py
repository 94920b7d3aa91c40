"""The calls of one meshed job, checked: each upstream edge against its catalog, each allow-list
name against the names the mesh knows.

The sidecar reads an upstream's instances from the catalog the entry names (Consul's
``service`` or Nomad's ``nomadService``), so the same catalog answers here, one read per
(provider, service) of the job, and ``reconcilers.instances.edge_findings`` judges it as the
sidecar's template would. A catalog that cannot answer, or whose ACLs hide the service from the
controller's token, leaves its edges ``unknown``: never ``empty``, and never a phase change on
its own (an Unknown fact keeps a verified job Ready).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.consul.wire import HealthEntry
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import SpecError, parse_job_specs
from crds_equivalent.status import Condition, ConditionType, EdgeRecord
from reconcilers.conditions import PURE_CLIENT, condition
from reconcilers.injection.edges import AllowList, UpstreamEdge, allow_lists, upstream_edges
from reconcilers.injection.inject import UndoError, uninject
from reconcilers.injection.plan import default_ttl_seconds
from reconcilers.instances.catalogs import CatalogProblem, read_service
from reconcilers.instances.edge_findings import (
    allow_findings,
    edge_records,
    upstreams_condition,
)
from reconcilers.ports import Catalog, NativeCatalog


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


def job_calls(job: Mapping[str, Any], config: MeshConfig) -> JobCalls:
    """The edges and allow lists of the meshed groups; empty for an unmeshed or invalid job
    (the mesh reconciler reports that one)."""
    try:
        user = uninject(job)
        specs = parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(config))
    except (UndoError, SpecError):
        return JobCalls()
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


def judge_calls(
    calls: JobCalls,
    entries: Mapping[tuple[str, str], Sequence[HealthEntry]],
    unknown: Mapping[tuple[str, str], str],
    known_names: frozenset[str] | None,
) -> CallsVerdict:
    """Records, ``UpstreamsHealthy`` and the allow warnings (none when the names are unknown:
    a warning must not come from a listing that failed)."""
    records = tuple(edge_records(calls.edges, entries, unknown))
    warnings: tuple[str, ...] = ()
    if known_names is not None:
        warnings = tuple(f.message for f in allow_findings(calls.allow, set(known_names)))
    return CallsVerdict(records, upstreams_condition(records), warnings)
