"""PURE: what the status says about a group's calls — an upstream that is empty or not meshed,
an allow-list name nobody fronts — from the edge facts and the catalogs' answers.

The sidecar itself never falls back to plaintext: an upstream without a usable instance
answers 503 (http) or closes (tcp). Whoever runs the group must still learn WHY, so each edge
is judged here against the same instances the sidecar's template sees:
- Consul (``service "mesh-tls.<name>"``): registrations tagged ``mesh-tls`` with every check
  passing;
- Nomad (``nomadService "mesh-tls.<name>"``): registrations tagged ``mesh-tls``; Nomad's catalog
  has no health filter, so neither has this judgement.

The health reconciler gathers the entries per (provider, service)
(``reconcilers.health.upstreams``) and records one :class:`EdgeRecord` per edge, the
``UpstreamsHealthy`` condition (errors), and the allow warnings in ``MeshStatus.warnings``.
``controllerctl status`` judges its live rows with the same functions. A provider whose catalog
did not answer is absent from ``entries``: its edges are ``unknown``, not empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from controller.consul.wire import HealthEntry
from crds_equivalent import keys
from crds_equivalent.status import Condition, ConditionType, EdgeRecord
from reconcilers.conditions import condition
from reconcilers.injection.edges import AllowList, UpstreamEdge

UPSTREAM_EMPTY: Final = "UpstreamEmpty"
UPSTREAM_NOT_MESHED: Final = "UpstreamNotMeshed"
UPSTREAM_HANDSHAKE_FAILED: Final = "UpstreamHandshakeFailed"
FAILING_STATES: Final = ("empty", "not meshed", "handshake failed")
ALLOW_NAME_UNKNOWN: Final = "AllowNameUnknown"
UPSTREAMS_UNKNOWN: Final = "CatalogUnavailable"
UPSTREAMS = ConditionType.UPSTREAMS_HEALTHY


@dataclass(frozen=True)
class Handshakes:
    """What the controller's TLS probe of one upstream's usable instances said: the service
    IDs whose handshake failed as a mesh client's would (no TLS, or a certificate it rejects;
    an instance the controller could not reach is no evidence) and the first such failure."""

    failed: frozenset[str] = frozenset()
    error: str = ""


@dataclass(frozen=True)
class EdgeFinding:
    group: str
    severity: Literal["error", "warning"]
    reason: str
    message: str


def usable(entry: HealthEntry, provider: str) -> bool:
    """The sidecar's template would use this instance."""
    tagged = keys.TLS_SERVICE_TAG in entry.tags
    return tagged and (provider == "nomad" or entry.passing)


def edge_record(
    edge: UpstreamEdge,
    found: Sequence[HealthEntry] | None,
    unknown: str = "",
    handshakes: Handshakes | None = None,
) -> EdgeRecord:
    """The edge as its catalog shows it; ``found`` None: the catalog did not answer (``unknown``
    says why), which is Unknown, never empty. ``handshakes``: the probe of its usable
    instances (None: not probed), which takes the failed ones out of the count."""
    base = EdgeRecord(
        group=edge.group,
        service=edge.service,
        port=edge.port,
        protocol=edge.protocol,
        provider=edge.provider,
        state="unknown",
        message=unknown or f"{edge.provider} did not answer for {edge.service}",
    )
    if found is None:
        return base
    what = f'group "{edge.group}": upstream {edge.service}:{edge.port}/{edge.protocol}'
    effect = "answers 503" if edge.protocol == "http" else "closes every connection"
    tagged = [e for e in found if keys.TLS_SERVICE_TAG in e.tags]
    usable_count = sum(1 for e in found if usable(e, edge.provider))
    if found and not tagged:
        message = (
            f"{what}: {edge.service} has {len(found)} instance(s) in {edge.provider}, "
            f'none tagged "{keys.TLS_SERVICE_TAG}": it is not meshed, and the sidecar '
            f"never falls back to plaintext (the listener {effect}); mesh it "
            f'(meta "{keys.MESH_TLS}" = "true")'
        )
        return base.model_copy(update={"state": "not meshed", "healthy": 0, "message": message})
    if not usable_count:
        detail = f"{len(tagged)} registered, none passing" if tagged else "none registered"
        message = (
            f"{what}: no healthy {keys.TLS_SERVICE_TAG} instance in {edge.provider} "
            f"({detail}); the listener {effect}"
        )
        return base.model_copy(update={"state": "empty", "healthy": 0, "message": message})
    shook = handshakes or Handshakes()
    good = sum(1 for e in found if usable(e, edge.provider) and e.service_id not in shook.failed)
    if not good:
        failing = "answers 502" if edge.protocol == "http" else "closes every connection"
        message = (
            f"{what}: every healthy {keys.TLS_SERVICE_TAG} instance in {edge.provider} failed "
            f"a verified TLS handshake ({shook.error}); the listener {failing}"
        )
        update = {"state": "handshake failed", "healthy": 0, "message": message}
    else:
        update = {"state": "healthy", "healthy": good, "message": ""}
    return base.model_copy(update=update | {"handshake_error": shook.error})


def edge_records(
    edges: Sequence[UpstreamEdge],
    entries: Mapping[tuple[str, str], Sequence[HealthEntry]],
    unknown: Mapping[tuple[str, str], str] | None = None,
    handshakes: Mapping[tuple[str, str], Handshakes] | None = None,
) -> list[EdgeRecord]:
    """One record per edge; ``entries`` by (provider, service), absent when not answered
    (``unknown`` may say why); ``handshakes`` by (provider, service) when probed."""
    why, shook = unknown or {}, handshakes or {}
    return [
        edge_record(
            e,
            entries.get((e.provider, e.service)),
            why.get((e.provider, e.service), ""),
            shook.get((e.provider, e.service)),
        )
        for e in edges
    ]


def upstream_findings(
    edges: Sequence[UpstreamEdge],
    entries: Mapping[tuple[str, str], Sequence[HealthEntry]],
) -> list[EdgeFinding]:
    """One finding per upstream the sidecar cannot use; ``entries`` by (provider, service)."""
    out: list[EdgeFinding] = []
    for record in edge_records(edges, entries):
        if record.state in ("empty", "not meshed"):
            reason = UPSTREAM_EMPTY if record.state == "empty" else UPSTREAM_NOT_MESHED
            out.append(EdgeFinding(record.group, "error", reason, record.message))
    return out


def upstreams_condition(records: Sequence[EdgeRecord]) -> Condition:
    """``UpstreamsHealthy``: False on any empty, unmeshed or handshake-failed edge (the first
    named, the rest counted), else Unknown on any unanswered one, else True (vacuously for no
    upstream)."""
    bad = [r for r in records if r.state in FAILING_STATES]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        reason = {
            "not meshed": UPSTREAM_NOT_MESHED,
            "handshake failed": UPSTREAM_HANDSHAKE_FAILED,
        }.get(bad[0].state, UPSTREAM_EMPTY)
        return condition(UPSTREAMS, False, reason, bad[0].message + more)
    unknown = [r for r in records if r.state == "unknown"]
    if unknown:
        return condition(UPSTREAMS, None, UPSTREAMS_UNKNOWN, unknown[0].message)
    if not records:
        return condition(UPSTREAMS, True, "NoUpstreams", "no upstream to call")
    counts = ", ".join(f"{r.service}:{r.port} {r.healthy}" for r in records)
    return condition(
        UPSTREAMS, True, "AllUpstreamsHealthy", f"healthy mesh-tls instances: {counts}"
    )


def allow_findings(allow: Iterable[AllowList], known_names: set[str]) -> list[EdgeFinding]:
    """A warning per allow-list name that no job fronts and no pure client is called:
    probably a typo, which locks that caller out; not an error (the job may come later)."""
    known = {name.lower() for name in known_names}  # allow names are lower-cased, as CNs match
    out: list[EdgeFinding] = []
    for entry in allow:
        unknown = [n for n in entry.services if n not in known]
        for name in unknown:
            out.append(
                EdgeFinding(
                    entry.group,
                    "warning",
                    ALLOW_NAME_UNKNOWN,
                    f'group "{entry.group}": meta "{keys.MESH_TLS_ALLOW}" names "{name}", which '
                    "no meshed job fronts (nor is it a pure client's job ID); callers of that "
                    "name are let in once it exists",
                )
            )
    return out
