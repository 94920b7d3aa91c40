"""PURE: the rules a meshed job must meet before it is injected, each refusal saying what to do.

Kept apart from the planner (``plan``) because the two change for different reasons: the
planner decides *whether* a job needs a write (marker hashes, our objects still present), while
these rules say *why a job cannot be meshed as asked* — Nomad's own refusals we must not
provoke (duplicate names, a static port reserved twice), names the mesh reserves, ports it
cannot front, and groups left alone because they use Consul Connect. Each returns the first
problem as a sentence for the status record, in the style of crds_equivalent.spec.SpecError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from crds_equivalent import keys
from crds_equivalent.spec import MeshSpec
from reconcilers.injection import edges, fronting, identity, jobview, nginx


def connect_refusals(user: Mapping[str, Any], enabled: Mapping[str, MeshSpec]) -> dict[str, str]:
    """Meshed groups that already use Consul Connect, each with the reason it is left alone.

    Refused per group, not per job: the sibling groups of a Connect group are meshed as asked.
    """
    out: dict[str, str] = {}
    for group in jobview.groups(user):
        name = jobview.group_name(group)
        if name not in enabled:
            continue
        what = jobview.connect_usage(group)
        if what:
            out[name] = (
                f'group "{name}": uses Consul Connect ({what}); its traffic is already mTLS '
                "through Envoy, so the mesh leaves it alone: remove the Connect block, or remove "
                f'"{keys.MESH_TLS}" from this group (group meta "{keys.MESH_TLS}" = "false")'
            )
    return out


def validate(
    user: Mapping[str, Any],
    enabled: Mapping[str, MeshSpec],
    inputs_of: fronting.InputsOf = fronting.group_inputs,
) -> str | None:
    """The first reason the user's job cannot be meshed as asked, or None."""
    for group in jobview.groups(user):
        name = group.get("Name")
        if not isinstance(name, str) or not name:  # Nomad refuses such a job too
            return f"a task group has Name {json.dumps(name)[:40]}: expected a non-empty string"
    twice = _first_duplicate(jobview.group_name(g) for g in jobview.groups(user))
    if twice is not None:  # Nomad refuses such a job too; injecting it would never settle
        return f'group "{twice}" is defined twice: task group names must be unique'
    fronted_by: dict[str, tuple[str, MeshSpec]] = {}
    for group in jobview.groups(user):
        name = jobview.group_name(group)
        spec = enabled.get(name)
        if spec is None:
            continue
        problem = _validate_group(user, group, spec, inputs_of)
        if problem is not None:
            return f'group "{name}": {problem}'
        for service in inputs_of(user, group, spec).services:
            seen = fronted_by.setdefault(service.name, (name, spec))
            other, other_spec = seen
            if other != name and _shape(other_spec) != _shape(spec):
                return (
                    f'group "{name}": service "{service.name}" is also fronted by group '
                    f'"{other}" with different settings ({_describe(other_spec)} vs '
                    f"{_describe(spec)}); one service name needs one TLS shape"
                )
    return None


def _shape(spec: MeshSpec) -> tuple[str, str, bool]:
    return (str(spec.mode), str(spec.protocol), spec.mtls)


def _describe(spec: MeshSpec) -> str:
    return f"mode={spec.mode}, protocol={spec.protocol}, mtls={str(spec.mtls).lower()}"


def _first_duplicate(names: Iterable[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


_UNFLAG = f'or remove "{keys.MESH_TLS}" from this group (group meta "{keys.MESH_TLS}" = "false")'


def _validate_group(
    job: Mapping[str, Any],
    group: Mapping[str, Any],
    spec: MeshSpec,
    inputs_of: fronting.InputsOf,
) -> str | None:
    """The first reason this meshed group cannot be injected, saying what to do; or None."""
    twice = _first_duplicate(jobview.task_name(t) for t in jobview.tasks(group))
    if twice is not None:
        return f'task "{twice}" is defined twice: task names must be unique in a group'
    for task in jobview.tasks(group):
        if jobview.task_name(task) == keys.SIDECAR_TASK:
            return f'task name "{keys.SIDECAR_TASK}" is reserved for the mesh sidecar; rename it'
    for view in [*jobview.ports(group).values(), *jobview.task_ports(group)]:
        if view.label.startswith(keys.TLS_PORT_PREFIX):
            return (
                f'port label "{view.label}" uses the prefix "{keys.TLS_PORT_PREFIX}" reserved for '
                "the mesh's TLS ports; rename it"
            )
    conflict = _static_port_conflict(group)
    if conflict is not None:
        return conflict
    try:
        inputs = inputs_of(job, group, spec)
    except jobview.UnresolvedName as err:
        return (
            f"{err}, which is only known at run time; the certificate needs the name now: "
            "use a literal name or ${JOB}, ${TASKGROUP}, ${TASK}, ${BASE}"
        )
    if inputs.missing_labels:
        return (
            f'meta "{keys.MESH_TLS_PORTS}" names port labels the group\'s networks do not '
            f"declare: {', '.join(inputs.missing_labels)}"
        )
    if not inputs.ports and not spec.upstreams:
        return "is meshed but has no port to front: " + _why_nothing_to_front(job, group)
    if not inputs.ports:  # a pure client: it calls upstreams, its leaf names its job
        try:
            identity.pure_client_name(jobview.job_id(job))
        except identity.BadClientName as err:
            return str(err)
    first = jobview.as_list(group.get("Networks"))[:1]
    if first and not isinstance(first[0], Mapping):
        # the injection writes task ports' TLS ports and upstream listeners into it
        return "the group's first network is not an object; fix the group's networks"
    conflict = edges.listener_conflict(group, spec)
    if conflict is not None:
        return conflict
    problem = _task_port_problem(group, inputs)
    if problem is not None:
        return problem
    mixed = _mixed_providers(group)
    if mixed is not None:
        return mixed
    for service in inputs.services:
        if service.view.address_mode == "driver":
            return (
                f'service "{service.name}" uses address_mode "driver"; the TLS port belongs '
                "to the sidecar, not to the app's driver: set the service's address_mode to "
                f'"auto" or "host", {_UNFLAG}'
            )
    routes = fronting.health_routes(inputs, spec)
    for label in inputs.labels:
        try:
            nginx.check_locations("", [(r.method, r.path) for r in routes if r.label == label])
        except nginx.UnsafeCheck as err:
            return str(err)
    return None


def _mixed_providers(group: Mapping[str, Any]) -> str | None:
    """Services of one group on two discovery providers, which Nomad refuses at validation.

    nomad/structs/structs.go, TaskGroup.validateServices: "Multiple service providers used: task
    group services must use the same provider" (group and task services together). The mesh
    fronts either provider the same way, so it could inject such a group, but Nomad would never
    register it; refusing here says why instead of a rollout that cannot start.
    """
    providers: dict[str, str] = {}
    for view in jobview.services(group):
        providers.setdefault(view.provider, jobview.as_str(view.service.get("Name")))
    if len(providers) < 2:
        return None
    named = ", ".join(f'"{p}" (service "{n}")' for p, n in sorted(providers.items()))
    return (
        f"its services use more than one provider: {named}; Nomad refuses such a group "
        '("Multiple service providers used: task group services must use the same provider"): '
        "give every service of the group the same provider"
    )


def _why_nothing_to_front(job: Mapping[str, Any], group: Mapping[str, Any]) -> str:
    """Why no port is fronted, from the most basic cause, and what the user can do."""
    views = list(jobview.services(group))
    kind = jobview.as_str(job.get("Type")) or "service"
    if not views:
        return (
            f"the group registers no service (in this {kind} job), and the mesh fronts "
            "services on ports; add a service with a port to the group, "
            f'or set meta "{keys.MESH_TLS_PORTS}", {_UNFLAG}'
        )
    labelled = [v for v in views if v.port_label]
    if not labelled:
        names = ", ".join(f'"{jobview.as_str(v.service.get("Name"))}"' for v in views)
        return (
            f"no service uses a port (services: {names}); give a service a port label declared "
            f'in the group network or its task\'s resources, or set meta "{keys.MESH_TLS_PORTS}", '
            + _UNFLAG
        )
    return (
        "no service uses a port declared in the group's network or a task's resources "
        f"(labels used: {', '.join(sorted({v.port_label for v in labelled}))}); declare the "
        f'port, or set meta "{keys.MESH_TLS_PORTS}", {_UNFLAG}'
    )


def _static_port_conflict(group: Mapping[str, Any]) -> str | None:
    """A static host port reserved twice in the group, which Nomad refuses at validation.

    nomad/structs/structs.go, TaskGroup.validateNetworks: "Static port %d already reserved by
    %s", per host network, across the group network and every task's network. The mesh cannot
    front a group Nomad will not place.
    """
    seen: dict[tuple[str, int], str] = {}
    views = [*jobview.ports(group).values(), *jobview.task_ports(group)]
    for view in views:
        if not view.static_value or view.port.get("IgnoreCollision") is True:
            continue
        key = (view.host_network or "default", view.static_value)
        owner = f"task {view.task}" if view.task else "the group network"
        where = f'{owner} (port "{view.label}")'
        if key in seen:
            return (
                f"static port {view.static_value} is reserved twice, by {seen[key]} and by "
                f'{where}; Nomad refuses such a group ("Static port {view.static_value} '
                'already reserved"): give one of them another port or make it dynamic'
            )
        seen[key] = where
    return None


def _task_port_problem(group: Mapping[str, Any], inputs: fronting.GroupInputs) -> str | None:
    """Task-level ports the mesh cannot front as a host-mode group port, and why."""
    first = jobview.as_list(group.get("Networks"))[:1]
    for port in inputs.ports:
        if port.task is None:
            continue
        owners = sorted({v.task or "" for v in jobview.task_ports(group) if v.label == port.label})
        if len(owners) > 1:
            return (
                f'port label "{port.label}" is declared by tasks {", ".join(owners)}; the '
                "mesh cannot tell which one to front: rename one of them"
            )
        if first and jobview.is_namespaced_mode(jobview.as_str(first[0].get("Mode"))):
            return (
                f'port "{port.label}" is declared in task "{port.task}"\'s resources, but the '
                "group network is in a namespaced (bridge/CNI) mode; declare the port in the "
                "group network instead"
            )
        if port.namespaced:
            return (
                f'port "{port.label}" is declared in task "{port.task}"\'s resources with '
                f'network mode "{port.mode}"; declare it in the group network instead'
            )
    return None
