"""PURE: what the operator sees per meshed (job, group, service), from facts gathered elsewhere.

The status records say what the controller last concluded; the live facts (the job as stored,
its allocations, Consul's instances) say what is true now. A row joins both, so a controller
that stopped, crashed or was never told (a flag removed while it was down) cannot hide drift
behind a stale "Ready". Per-job drift comes from :func:`controller.ctl.drift.build_report`;
this module adds what only a per-service look can see: marker hash, sidecar allocations, TLS
registrations, plaintext instances, orphaned sidecars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.consul.wire import HealthEntry
from controller.ctl.drift import LiveJob, build_report
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.spec import MeshSpec, Mode, SpecError, parse_job_specs
from crds_equivalent.status import MeshStatus, Phase
from crds_equivalent.status_report import AllocCount, CertSummary, Injected, StatusRow, TlsCount
from reconcilers.conditions import first_failing
from reconcilers.injection import edges, fronting, jobview
from reconcilers.injection.inject import UndoError, is_marked, spec_hash, uninject
from reconcilers.injection.plan import default_ttl_seconds

NOMAD_PROVIDER = "nomad"
ORPHANED = "orphaned sidecar: mesh.tls is off but the group still carries the sidecar and markers"


@dataclass(frozen=True)
class JobFacts:
    """One job as Nomad has it now (``job`` None: it is gone) and its allocation stubs."""

    job: Mapping[str, Any] | None
    allocations: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class World:
    """Everything a report is computed from. ``jobs`` None means "status records only"."""

    statuses: Mapping[JobKey, MeshStatus]
    now: datetime
    config: MeshConfig
    jobs: Mapping[JobKey, JobFacts] | None = None
    health: Mapping[str, Sequence[HealthEntry]] | None = field(
        default_factory=dict
    )  # None: no answer
    # Nomad's own catalog, by (namespace, service): its services are namespaced, Consul's
    # (OSS) are not. None: Nomad did not answer.
    native_health: Mapping[tuple[str, str], Sequence[HealthEntry]] | None = field(
        default_factory=dict
    )
    default_issuer: str | None = None  # the PKI mount's default issuer id; None: not read


def cert_summary(
    status: MeshStatus | None, default_issuer: str | None, now: datetime
) -> CertSummary:
    if status is None:
        return CertSummary()
    expires: int | None = None
    if status.cert_not_after:
        try:
            when = datetime.fromisoformat(status.cert_not_after.replace("Z", "+00:00"))
            expires = int((when - now).total_seconds())
        except ValueError:
            expires = None
    state: Any = "unknown"
    if status.issuer and default_issuer:
        state = "current" if status.issuer.split(" ")[0] == default_issuer else "old"
    return CertSummary(
        not_after=status.cert_not_after,
        expires_in_seconds=expires,
        issuer=status.issuer,
        issuer_state=state,
    )


def _message(status: MeshStatus | None) -> str:
    if status is None:
        return ""
    failing = first_failing(status.conditions)
    if failing is not None and failing.message:
        return failing.message
    return status.message


def _markers(job: Mapping[str, Any]) -> tuple[str, ...]:
    found = (jobview.group_meta(g).get(keys.INJECTED_GROUP_META) for g in jobview.groups(job))
    return tuple(sorted({m for m in found if isinstance(m, str)}))


def _meshed(job: Mapping[str, Any]) -> bool:
    return any(is_marked(g) for g in jobview.groups(job)) or any(
        s.enabled for s in _specs(job).values()
    )


def _specs(job: Mapping[str, Any]) -> dict[str, MeshSpec]:
    try:
        return parse_job_specs(uninject(job))
    except (UndoError, SpecError):
        return {}


@dataclass(frozen=True)
class _Target:
    group: Mapping[str, Any]  # the live (injected) group
    service: str
    label: str
    spec: MeshSpec | None  # None: orphaned
    injected: Injected
    provider: str = "consul"  # the catalog the service registers in: consul | nomad


def _injected_state(
    group: Mapping[str, Any],
    user: Mapping[str, Any],
    ugroup: Mapping[str, Any],
    spec: MeshSpec,
    config: MeshConfig,
) -> Injected:
    current = jobview.group_meta(group).get(keys.INJECTED_GROUP_META)
    if current is None:
        return "missing"
    sidecar = any(jobview.is_managed_sidecar(t) for t in jobview.tasks(group))
    labels = jobview.ports(group)
    present = sidecar and all(keys.tls_port_label(p) in labels for p in spec.ports)
    if not edges.group_namespaced(group):
        present = present and all(
            keys.upstream_port_label(u.port) in labels for u in spec.upstreams
        )
    if current == spec_hash(spec, config, user, ugroup) and present:
        return "current"
    return "stale"


def _targets(job: Mapping[str, Any], config: MeshConfig) -> list[_Target]:
    """Raises UndoError / SpecError for a job that cannot be split into services."""
    user = uninject(job)
    specs = parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(config))
    user_groups = {jobview.group_name(g): g for g in jobview.groups(user)}
    out: list[_Target] = []
    for group in jobview.groups(job):
        name = jobview.group_name(group)
        spec = specs.get(name)
        if spec is not None and spec.enabled:
            ugroup = user_groups[name]
            state = _injected_state(group, user, ugroup, spec, config)
            try:
                services = fronting.group_inputs(user, ugroup, spec).services
            except jobview.UnresolvedName:
                services = ()
            triples = list(
                dict.fromkeys((s.name, s.view.port_label, s.view.provider) for s in services)
            )
            for service, label, provider in triples or [("", ",".join(spec.ports), "consul")]:
                out.append(_Target(group, service, label, spec, state, provider))
        elif is_marked(group):
            found: list[tuple[str, str, str]] = []
            for view in jobview.services(group):
                if view.port_label.startswith(keys.TLS_PORT_PREFIX):
                    try:
                        service = jobview.service_name(job, group, view)
                    except jobview.UnresolvedName:
                        service = jobview.as_str(view.service.get("Name"))
                    label = view.port_label.removeprefix(keys.TLS_PORT_PREFIX)
                    found.append((service, label, view.provider))
            for service, label, provider in list(dict.fromkeys(found)) or [("", "", "consul")]:
                out.append(_Target(group, service, label, None, "orphaned", provider))
    return out


def _alloc_count(
    job: Mapping[str, Any], group: Mapping[str, Any], allocs: Sequence[Mapping[str, Any]]
) -> tuple[AllocCount, list[str]]:
    """(running with sidecar / desired, IDs of this group's running allocations)."""
    name = jobview.group_name(group)
    mine = [a for a in allocs if a.get("TaskGroup") == name and a.get("DesiredStatus") == "run"]
    running = [a for a in mine if a.get("ClientStatus") == "running"]
    with_sidecar = 0
    for alloc in running:
        states = jobview.as_map(alloc.get("TaskStates"))
        if jobview.as_map(states.get(keys.SIDECAR_TASK)).get("State") == "running":
            with_sidecar += 1
    count = group.get("Count")
    desired = count if isinstance(count, int) else 1
    if job.get("Type") in ("system", "sysbatch") or jobview.launches_children(job):
        desired = len(mine)  # one per node, or one group per live child: what was placed
    return AllocCount(running=with_sidecar, desired=desired), [str(a.get("ID")) for a in running]


def _is_tls(entry: HealthEntry, tls_label: str) -> bool:
    return keys.TLS_SERVICE_TAG in entry.tags or entry.service_id.endswith(f"-{tls_label}")


def _live_row(
    base: StatusRow, job: Mapping[str, Any], target: _Target, facts: JobFacts, world: World
) -> StatusRow:
    allocs, running_ids = _alloc_count(job, target.group, facts.allocations)
    entries: Sequence[HealthEntry] = ()
    if target.provider == NOMAD_PROVIDER:
        known = world.native_health is not None
        if target.service:
            entries = (world.native_health or {}).get((base.namespace, target.service), ())
    else:
        known = world.health is not None
        entries = (world.health or {}).get(target.service, ()) if target.service else ()
    tls_label = keys.tls_port_label(target.label)
    prefixes = tuple(f"_nomad-task-{a}-" for a in running_ids)
    tls = [
        e
        for e in entries
        if _is_tls(e, tls_label)
        and (e.service_id.startswith(prefixes) or not e.service_id.startswith("_nomad-task-"))
    ]
    plain = [e for e in entries if not _is_tls(e, tls_label)]
    passing = sum(1 for e in tls if e.passing)
    registers = known and bool(target.service)  # a pure client's row has nothing to count
    drift = list(base.drift)
    if target.injected == "orphaned":
        drift.insert(0, ORPHANED)
    elif target.injected == "stale":
        drift.append("injected sidecar is stale: the marker does not match the current spec")
    elif target.injected == "missing":
        drift.append("not injected: the group has no sidecar yet")
    if allocs.running < allocs.desired:
        drift.append(f"{allocs.running}/{allocs.desired} allocations run the sidecar")
    if known and target.service and len(tls) < len(running_ids):
        drift.append(f"{len(tls)}/{len(running_ids)} running allocations registered on {tls_label}")
    if passing < len(tls):
        drift.append(f"{len(tls) - passing}/{len(tls)} TLS registrations not passing")
    if not known:
        pass
    elif target.spec is not None and target.spec.mode is Mode.PERMISSIVE:
        untagged = [e for e in plain if keys.PLAINTEXT_SERVICE_TAG not in e.tags]
        if untagged:
            drift.append(
                f"{len(untagged)} plaintext instance(s) of {target.service} lack the tag "
                f"{keys.PLAINTEXT_SERVICE_TAG}"
            )
    elif plain:
        where = ", ".join(sorted({f"{e.effective_address}:{e.port}" for e in plain})[:3])
        drift.append(f"{len(plain)} instance(s) of {target.service} still on plaintext ({where})")
    return base.model_copy(
        update={
            "group": jobview.group_name(target.group),
            "service": target.service,
            "port": target.label,
            "mode": str(target.spec.mode) if target.spec is not None else "",
            "injected": target.injected,
            "allocs": allocs,
            "tls": TlsCount(passing=passing, registered=len(tls)) if registers else None,
            "plaintext": len(plain) if registers else None,
            "drift": drift,
            "in_sync": not drift,
            "upstreams": [u.spelled() for u in target.spec.upstreams] if target.spec else [],
            "allow": list(target.spec.allow) if target.spec else [],
        }
    )


def service_names(
    job: Mapping[str, Any], config: MeshConfig, provider: str = "consul"
) -> list[str]:
    """The service names the rows of ``job`` look up in ``provider``'s catalog (Consul's by
    default, ``nomad`` for Nomad's own); [] when the job cannot be split."""
    try:
        targets = _targets(job, config)
    except (UndoError, SpecError):
        return []
    return sorted({t.service for t in targets if t.service and t.provider == provider})


def build_rows(world: World) -> list[StatusRow]:
    """Every row, sorted by (namespace, job, group, service)."""
    live: dict[JobKey, LiveJob] | None = None
    if world.jobs is not None:
        live = {}
        for key, facts in world.jobs.items():
            if facts.job is not None:
                live[key] = LiveJob(
                    job_modify_index=int(facts.job.get("JobModifyIndex") or 0),
                    markers=_markers(facts.job),
                    meshed=_meshed(facts.job),
                )
    rows: list[StatusRow] = []
    for job_row in build_report(world.statuses, now=world.now, live=live):
        key = JobKey(job_row.namespace, job_row.job)
        status = world.statuses.get(key)
        base = StatusRow(
            namespace=key[0],
            job=key[1],
            cert=cert_summary(status, world.default_issuer, world.now),
            phase=job_row.phase,
            message=_message(status),
            drift=list(job_row.drift),
            in_sync=job_row.ok,
            warnings=list(status.warnings) if status is not None else [],
        )
        found = (world.jobs or {}).get(key)
        if found is None or found.job is None:
            rows.append(base)
            continue
        rows.extend(_rows_of(base, found.job, found, world))
    rows.sort(key=lambda r: (r.namespace, r.job, r.group, r.service, r.port))
    return rows


def _rows_of(
    base: StatusRow, job: Mapping[str, Any], facts: JobFacts, world: World
) -> list[StatusRow]:
    if jobview.is_stopped(job):
        return [base.model_copy(update={"message": "job is stopped (Stop=true); left alone"})]
    try:
        targets = _targets(job, world.config)
    except (UndoError, SpecError) as err:
        drift = list(base.drift)
        if base.phase != Phase.INVALID:
            drift.append(f"cannot be meshed as written: {err}")
        return [base.model_copy(update={"message": str(err), "drift": drift, "in_sync": not drift})]
    if not targets:
        return [base]
    return [_live_row(base, job, t, facts, world) for t in targets]
