"""PURE: inject(job, specs, config) -> job ; uninject(job) -> job ; spec_hash.

The job is the user's; we own only what we add. Every group field the injection replaces is
first recorded, verbatim, in the group's undo record (its shape and ``uninject`` are in
``undo``), so ``uninject`` gives the user's group back exactly: ``uninject(inject(j)) == j``
and ``inject(inject(j)) == inject(j)`` for every job. Unmeshed groups and every field we do
not own pass through untouched; the input is never mutated. ``uninject``, ``is_marked`` and
``UndoError`` are re-exported here because most callers pair them with ``inject``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec, Mode, TlsProtocol
from reconcilers.injection import (
    edges,
    fronting,
    grant,
    identity,
    jobview,
    nginx,
    rewrite,
    sidecar,
)
from reconcilers.injection.hashing import INJECTOR_VERSION as INJECTOR_VERSION
from reconcilers.injection.hashing import effective_ttl, rotation_nonce
from reconcilers.injection.hashing import spec_hash as spec_hash
from reconcilers.injection.undo import UndoError as UndoError
from reconcilers.injection.undo import UndoRecord
from reconcilers.injection.undo import is_marked as is_marked
from reconcilers.injection.undo import uninject as uninject


class CannotInject(ValueError):
    """The group cannot be injected as asked (the planner reports these as Invalid)."""


def inject(
    job: Mapping[str, Any], specs: Mapping[str, MeshSpec], config: MeshConfig
) -> dict[str, Any]:
    """The job with every enabled group meshed; other groups exactly as the user wrote them."""
    return inject_user(uninject(job), specs, config)


def inject_user(
    user: dict[str, Any],
    specs: Mapping[str, MeshSpec],
    config: MeshConfig,
    *,
    inputs_of: fronting.InputsOf = fronting.group_inputs,
    markers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``inject`` of a job already un-injected (``user = uninject(job)``), for the planner,
    which has un-injected it, read its groups' inputs (``inputs_of``: an ``InputsMemo``) and
    hashed them (``markers``: the spec hash of each group, by name) before it decides to
    inject; what it has is not computed again."""
    out = dict(user)
    groups = out.get("TaskGroups")
    if not isinstance(groups, list):
        return out
    out["TaskGroups"] = copied = list(groups)
    for index, group in enumerate(groups):
        if not isinstance(group, dict):
            continue
        name = jobview.group_name(group)
        spec = specs.get(name)
        if spec is not None and spec.enabled:
            try:
                inputs = inputs_of(user, group, spec)
            except jobview.UnresolvedName as err:
                raise CannotInject(f'group "{spec.group}": {err}') from None
            marker = markers.get(name) if markers is not None else None
            if marker is None:
                marker = spec_hash(spec, config, user, group, inputs)
            # only the groups injection changes are copied; the others are the user's, shared
            copied[index] = writable = _writable_group(group)
            _inject_group(user, writable, spec, config, inputs, marker)
    return out


def _writable_group(group: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``group`` that ``_inject_group`` may change in place: the group, its task list
    and its tasks are new; every value below them stays the user's, shared and never changed,
    because the rewrites build new values instead (``rewrite``, ``edges``). A deep copy of the
    whole group was a fifth of an injection's CPU in a profile of the controller."""
    out = dict(group)
    tasks = out.get("Tasks")
    if isinstance(tasks, list):
        out["Tasks"] = [dict(t) if isinstance(t, dict) else t for t in tasks]
    return out


def _inject_group(
    user: Mapping[str, Any],
    group: dict[str, Any],
    spec: MeshSpec,
    config: MeshConfig,
    inputs: fronting.GroupInputs,
    marker: str,
) -> None:
    """Mesh ``group`` (a writable copy of the user's) in place; ``inputs`` and ``marker`` are
    those of the user's group, which the copy still equals."""
    if not inputs.ports and not spec.upstreams:
        raise CannotInject(f'group "{spec.group}": no port to front')
    side = _sidecar_spec(user, group, spec, config, inputs)
    tls_labels = {p.label: keys.tls_port_label(p.label) for p in inputs.ports}
    permissive = spec.mode is Mode.PERMISSIVE
    undo = UndoRecord()
    if "Constraints" in group:
        undo.constraints = group["Constraints"]

    undo.keep(group, "Networks")
    networks = rewrite.add_ports(jobview.as_list(group.get("Networks")), inputs.ports)
    networks = edges.reserve_listeners(networks, spec.upstreams, edges.group_namespaced(group))
    rewrite.set_ordered(group, "Networks", networks, rewrite.GROUP_ORDER)

    group_names = {s.view.index: s.name for s in inputs.services if s.view.task is None}
    if group_names:
        undo.keep(group, "Services")
        group["Services"] = rewrite.rewrite_services(
            jobview.as_list(group.get("Services")), group_names, tls_labels, permissive, config
        )
    for index, task in enumerate(jobview.as_list(group.get("Tasks"))):
        if not isinstance(task, dict):
            continue
        name = jobview.task_name(task)
        names = {s.view.index: s.name for s in inputs.services if s.view.task == name}
        if names:
            undo.keep_task(index, task, "Services")
            task["Services"] = rewrite.rewrite_services(
                jobview.as_list(task.get("Services")), names, tls_labels, permissive, config
            )

    task = sidecar.sidecar_task(side, config)
    tasks = group.get("Tasks")
    if isinstance(tasks, list):
        undo.sidecar_at = len(tasks)
        tasks.append(task)
    else:
        undo.keep(group, "Tasks")
        rewrite.set_ordered(group, "Tasks", [task], rewrite.GROUP_ORDER)

    if isinstance(group.get("Meta"), Mapping):
        undo.meta = "object"
    elif "Meta" in group:
        undo.meta = "null"
        if group["Meta"] is not None:  # not a JSON object: Nomad would reject it; keep it
            undo.keep(group, "Meta")
    meta = dict(jobview.group_meta(group))
    meta[keys.INJECTED_GROUP_META] = marker
    meta[keys.UNDO_GROUP_META] = undo.dumps()
    rewrite.set_ordered(group, "Meta", meta, rewrite.GROUP_ORDER)


def _sidecar_spec(
    job: Mapping[str, Any],
    group: Mapping[str, Any],
    spec: MeshSpec,
    config: MeshConfig,
    inputs: fronting.GroupInputs,
) -> sidecar.SidecarSpec:
    if inputs.ports:
        names = fronting.service_names(job, group, inputs)
        cn = f"{names[0]}.{config.domain}"
        alt = [f"{n}.{config.domain}" for n in names[1:]]
        alt += [f"{n}.service.${{NOMAD_DC}}.{config.datacenter_domain}" for n in names]
    else:  # a pure client: named after its job (identity)
        try:
            cn, alt = identity.pure_client_cn(job, config.domain), []
        except identity.BadClientName as err:
            raise CannotInject(f'group "{spec.group}": {err}') from None
    alt += list(spec.sans)
    # One IP SAN per host network the TLS ports live on ("" is Nomad's "default").
    per_network: dict[str, str] = {}
    for port in inputs.ports:
        per_network.setdefault(port.host_network or "default", keys.tls_port_label(port.label))
    try:
        role = grant.job_role(config, jobview.namespace(job), jobview.job_id(job))
    except grant.CannotBind as err:
        raise CannotInject(str(err)) from None
    routes = fronting.health_routes(inputs, spec)
    listeners = tuple(
        nginx.Listener(
            keys.tls_port_label(p.label),
            p.label,
            p.namespaced and p.task is None,
            p.task,
            tuple((r.method, r.path) for r in routes if r.label == p.label),
        )
        for p in inputs.ports
    )
    for listener in listeners:
        try:
            nginx.check_locations("", listener.health_checks)
        except nginx.UnsafeCheck as err:
            raise CannotInject(f'group "{spec.group}": {err}') from None
    return sidecar.SidecarSpec(
        listeners=listeners,
        tcp=spec.protocol is TlsProtocol.TCP,
        mtls=spec.mtls,
        common_name=cn,
        alt_names=sidecar.dedupe(alt),
        ip_labels=tuple(per_network.values()),
        ttl_seconds=effective_ttl(spec, job),
        rotation=rotation_nonce(group),
        edges=nginx.Edges(spec.upstreams, spec.allow, config.domain),
        namespaced=edges.group_namespaced(group),
        pki_role=role,
    )
