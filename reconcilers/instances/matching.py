"""PURE: which running instance of a meshed job serves which fronted port, as its catalog sees it.

Shared by the health, certificate and rotation reconcilers. Facts are matched by Nomad's service
IDs, ``_nomad-task-<alloc>-<task | group-<group>>-<service>-<port label>``: the alloc ID says which
of this job's allocations an instance is (a service name may be shared with other jobs), the port
label says whether it is the TLS registration (``mesh_tls_<label>``) or the plaintext one.
Nomad's own catalog uses the same IDs (``client/serviceregistration/id.go``,
``MakeAllocServiceID``), so native registrations are matched by the same rule
(``reconcilers.instances.catalogs`` turns them into Consul's shape).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.consul.wire import HealthEntry
from controller.tlsprobe import ProbeTarget
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import Mode
from reconcilers.injection import fronting, jobview
from reconcilers.injection.userspecs import UserSpecs, user_specs

MAX_LISTED = 3  # problems spelled out in a condition message; the rest are counted


@dataclass(frozen=True)
class FrontedPort:
    """A service the sidecar fronts in one group, and how its two registrations are named."""

    group: str
    service: str
    label: str
    mode: Mode
    server_name: str  # <service>.<domain>: the SNI sent and the name verified
    provider: str = "consul"  # the catalog the service registers in: consul | nomad

    @property
    def tls_label(self) -> str:
        return keys.tls_port_label(self.label)


def fronted_ports(job: Mapping[str, Any], config: MeshConfig) -> list[FrontedPort]:
    """Every (group, service, port) the injection fronts; [] for an unmeshed or invalid job."""
    parsed = user_specs(job, config)
    return fronted_ports_of(parsed, config) if parsed is not None else []


def fronted_ports_of(parsed: UserSpecs, config: MeshConfig) -> list[FrontedPort]:
    """``fronted_ports`` of a job already un-injected and parsed (``user_specs``)."""
    user, specs = parsed.user, parsed.specs
    out: list[FrontedPort] = []
    for group in jobview.groups(user):
        spec = specs.get(jobview.group_name(group))
        if spec is None or not spec.enabled:
            continue
        try:
            inputs = fronting.group_inputs(user, group, spec)
        except jobview.UnresolvedName:
            continue
        for svc in inputs.services:
            port = FrontedPort(
                spec.group,
                svc.name,
                svc.view.port_label,
                spec.mode,
                f"{svc.name}.{config.domain}",
                svc.view.provider,
            )
            if port not in out:
                out.append(port)
    return out


def running_allocations(allocations: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Alloc IDs by task group, of allocations that run and are meant to."""
    out: dict[str, list[str]] = {}
    for alloc in allocations:
        if alloc.get("ClientStatus") == "running" and alloc.get("DesiredStatus") == "run":
            out.setdefault(str(alloc.get("TaskGroup") or ""), []).append(str(alloc.get("ID")))
    return out


@dataclass(frozen=True)
class Instance:
    """One TLS registration of one of this job's allocations: what gets probed."""

    port: FrontedPort
    alloc_id: str
    entry: HealthEntry

    @property
    def target(self) -> ProbeTarget:
        return ProbeTarget(self.entry.effective_address, self.entry.port, self.port.server_name)


@dataclass
class ConsulFindings:
    """What Consul showed of one job. ``hidden``: allocations whose TLS registration Consul's
    ACLs may have hidden from the token (unknown, not unregistered); ``filtered``: the
    services whose answer was filtered, with how we know."""

    instances: list[Instance] = field(default_factory=list)
    unhealthy: list[tuple[str, str]] = field(default_factory=list)  # (reason, text)
    plaintext: list[str] = field(default_factory=list)
    plaintext_kept: int = 0
    allocations: int = 0
    hidden: list[str] = field(default_factory=list)
    filtered: dict[str, str] = field(default_factory=dict)


def _short(alloc_id: str) -> str:
    return alloc_id[:8]


def _failing_check(entry: HealthEntry) -> str:
    bad = [c for c in entry.checks if str(c.get("Status")) != "passing"]
    if not bad:
        return ""
    first = bad[0]
    output = " ".join(str(first.get("Output") or "").split())
    name = str(first.get("Name") or first.get("CheckID") or "check")
    return f"{name}: {output[:120]}" if output else name


def consul_findings(
    ports: Sequence[FrontedPort],
    allocs_by_group: Mapping[str, Sequence[str]],
    health: Mapping[str, Sequence[HealthEntry]],
    filtered: Mapping[str, str] | None = None,
) -> ConsulFindings:
    """Match Consul's instances of each fronted service to this job's running allocations.

    ``filtered`` names the services whose answer ACLs filtered (service -> how we know): an
    allocation missing from such an answer may be registered and hidden, so it is ``hidden``,
    not ``NotRegistered`` — calling a healthy job unregistered because the controller's token
    is blind is the misdiagnosis of audit §11."""
    found = ConsulFindings(filtered=dict(filtered or {}))
    found.allocations = sum(len(allocs_by_group.get(g, ())) for g in {p.group for p in ports})
    for port in ports:
        entries = health.get(port.service, ())
        for alloc_id in allocs_by_group.get(port.group, ()):
            mine = [e for e in entries if e.service_id.startswith(f"_nomad-task-{alloc_id}-")]
            tls = [e for e in mine if e.service_id.endswith(f"-{port.service}-{port.tls_label}")]
            plain = [e for e in mine if e.service_id.endswith(f"-{port.service}-{port.label}")]
            who = f"{port.service}: allocation {_short(alloc_id)}"
            if not tls and port.service in found.filtered:
                found.hidden.append(f"{who} has no registration on {port.tls_label} it may see")
            elif not tls:
                found.unhealthy.append(
                    ("NotRegistered", f"{who} has no registration on {port.tls_label}")
                )
            for entry in tls:
                found.instances.append(Instance(port, alloc_id, entry))
                if keys.TLS_SERVICE_TAG not in entry.tags:
                    found.unhealthy.append(
                        (
                            "MissingTag",
                            f"{who} on {port.tls_label} lacks tag {keys.TLS_SERVICE_TAG}",
                        )
                    )
                if not entry.passing:
                    where = f"{entry.effective_address}:{entry.port}"
                    detail = _failing_check(entry)
                    found.unhealthy.append(
                        (
                            "ChecksFailing",
                            f"{who} at {where} is {entry.status}"
                            + (f" ({detail})" if detail else ""),
                        )
                    )
            for entry in plain:
                if port.mode is Mode.STRICT:
                    found.plaintext.append(f"{who} is still registered on plaintext {port.label}")
                elif keys.PLAINTEXT_SERVICE_TAG not in entry.tags:
                    found.plaintext.append(
                        f"{who} on plaintext {port.label} lacks tag {keys.PLAINTEXT_SERVICE_TAG}"
                    )
                else:
                    found.plaintext_kept += 1
    return found
