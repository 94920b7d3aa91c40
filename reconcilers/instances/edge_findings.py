"""PURE: what the status says about a group's calls — an upstream that is empty or not meshed,
an allow-list name nobody fronts — from the edge facts and the catalogs' answers.

The sidecar itself never falls back to plaintext: an upstream without a usable instance
answers 503 (http) or closes (tcp). Whoever runs the group must still learn WHY, so each edge
is judged here against the same instances the sidecar's template sees:
- Consul (``service "mesh-tls.<name>"``): registrations tagged ``mesh-tls`` with every check
  passing;
- Nomad (``nomadService "mesh-tls.<name>"``): registrations tagged ``mesh-tls``; Nomad's catalog
  has no health filter, so neither has this judgement.

Not wired into a reconciler yet: the caller (health, or a reconciler of its own) gathers the
entries per (provider, service) and writes the findings (errors as a condition, warnings in
the message). A provider whose catalog did not answer is absent from ``entries`` and yields no
finding (unknown, not empty).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from controller.consul.wire import HealthEntry
from crds_equivalent import keys
from reconcilers.injection.edges import AllowList, UpstreamEdge

UPSTREAM_EMPTY: Final = "UpstreamEmpty"
UPSTREAM_NOT_MESHED: Final = "UpstreamNotMeshed"
ALLOW_NAME_UNKNOWN: Final = "AllowNameUnknown"


@dataclass(frozen=True)
class EdgeFinding:
    group: str
    severity: Literal["error", "warning"]
    reason: str
    message: str


def _usable(entry: HealthEntry, provider: str) -> bool:
    tagged = keys.TLS_SERVICE_TAG in entry.tags
    return tagged and (provider == "nomad" or entry.passing)


def upstream_findings(
    edges: Sequence[UpstreamEdge],
    entries: Mapping[tuple[str, str], Sequence[HealthEntry]],
) -> list[EdgeFinding]:
    """One finding per upstream the sidecar cannot use; ``entries`` by (provider, service)."""
    out: list[EdgeFinding] = []
    for edge in edges:
        found = entries.get((edge.provider, edge.service))
        if found is None:
            continue
        what = f'group "{edge.group}": upstream {edge.service}:{edge.port}/{edge.protocol}'
        effect = "answers 503" if edge.protocol == "http" else "closes every connection"
        tagged = [e for e in found if keys.TLS_SERVICE_TAG in e.tags]
        if found and not tagged:
            out.append(
                EdgeFinding(
                    edge.group,
                    "error",
                    UPSTREAM_NOT_MESHED,
                    f"{what}: {edge.service} has {len(found)} instance(s) in {edge.provider}, "
                    f'none tagged "{keys.TLS_SERVICE_TAG}": it is not meshed, and the sidecar '
                    f"never falls back to plaintext (the listener {effect}); mesh it "
                    f'(meta "{keys.MESH_TLS}" = "true")',
                )
            )
        elif not any(_usable(e, edge.provider) for e in found):
            detail = f"{len(tagged)} registered, none passing" if tagged else "none registered"
            out.append(
                EdgeFinding(
                    edge.group,
                    "error",
                    UPSTREAM_EMPTY,
                    f"{what}: no healthy {keys.TLS_SERVICE_TAG} instance in {edge.provider} "
                    f"({detail}); the listener {effect}",
                )
            )
    return out


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
