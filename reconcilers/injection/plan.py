"""PURE: decide what a job needs — NoOp | Apply(job) | Remove(job) | Invalid(reason).

The planner never looks at the job as a whole to see whether it is up to date (Nomad
canonicalises jobs on register, so it never equals what we sent); it compares each meshed
group's marker hash with the hash of the user's current inputs, and checks our objects are
still there. An invalid spec never touches the job; the reason names the group and what to fix,
in the same style as crds_equivalent.spec.SpecError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.goparse import parse_go_duration
from crds_equivalent.spec import MeshSpec, SpecError, parse_job_specs
from reconcilers.injection import fronting, jobview, nginx
from reconcilers.injection.inject import (
    CannotInject,
    UndoError,
    inject,
    is_marked,
    spec_hash,
    uninject,
)


class NoOpReason(StrEnum):
    """Why nothing is written; the mesh reconciler branches on it (never on message text)."""

    STOPPED = "job is stopped"
    CHILD = "child job: meshed through its parent"
    NOT_MESHED = "not meshed"
    UP_TO_DATE = "up to date"


@dataclass(frozen=True)
class NoOp:
    reason: NoOpReason
    # Meshed groups left alone on purpose (Consul Connect), each reason naming its group.
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class Apply:
    job: dict[str, Any] = field(repr=False)
    reason: str = ""
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class Remove:
    job: dict[str, Any] = field(repr=False)
    reason: str = ""


REASON_LIMIT = 1000  # the reason lands in a status Variable; a 200 kB meta value must not


@dataclass(frozen=True)
class Invalid:
    reason: str

    def __post_init__(self) -> None:
        if len(self.reason) > REASON_LIMIT:
            object.__setattr__(self, "reason", self.reason[:REASON_LIMIT] + "…")


Decision = NoOp | Apply | Remove | Invalid


def default_ttl_seconds(config: MeshConfig) -> int:
    return int(parse_go_duration(config.ttl_default))


def plan_job(job: Mapping[str, Any], config: MeshConfig) -> Decision:
    """Plan from the job alone: un-inject it, parse the user's specs, then ``plan``."""
    if jobview.is_child(job):  # before uninject: a child's undo record is its parent's
        return NoOp(NoOpReason.CHILD)
    try:
        user = uninject(job)
    except UndoError as err:
        return Invalid(str(err))
    try:
        specs: Mapping[str, MeshSpec] | SpecError = parse_job_specs(
            user, default_ttl_seconds=default_ttl_seconds(config)
        )
    except SpecError as err:
        specs = err
    return plan(job, specs, config)


def plan(
    job: Mapping[str, Any], specs: Mapping[str, MeshSpec] | SpecError, config: MeshConfig
) -> Decision:
    """``specs`` are parsed from ``uninject(job)`` (or the SpecError that parsing raised).

    A periodic or dispatched child is never planned: Nomad derived it from its parent, markers
    included (``PeriodicDispatch.deriveJob`` and ``Job.Dispatch`` copy the parent), so it carries
    exactly the sidecar its parent has. Its hash would not match (the hash covers the job's ID
    and name, which the child does not share), but that is not staleness, and writing it back
    would either be refused (a dispatched child: ``validateJobUpdate``, "cannot update
    non-parameterized job to being parameterized") or detach it from its parent and replace
    its running batch allocation (a periodic child loses ``ParentID`` in
    ``ApiJobToStructJob``). A new parent version reaches the next children by itself.
    """
    if jobview.is_child(job):
        return NoOp(NoOpReason.CHILD)
    if jobview.is_stopped(job):
        return NoOp(NoOpReason.STOPPED)
    try:
        user = uninject(job)
    except UndoError as err:
        return Invalid(str(err))
    if isinstance(specs, SpecError):
        return Invalid(str(specs))
    enabled = {name: s for name, s in specs.items() if s.enabled}
    marked = any(is_marked(g) for g in jobview.groups(job))
    if not enabled:
        if marked:
            return Remove(registrable(user), "mesh.tls is off for every group")
        return NoOp(NoOpReason.NOT_MESHED)
    refusals = connect_refusals(user, enabled)
    if refusals and len(refusals) == len(enabled):
        return Invalid(next(iter(refusals.values())))
    refused = tuple(refusals.values())
    # A Connect group is planned as if unflagged: never injected, and restored if it was.
    specs = {n: MeshSpec(group=n) if n in refusals else s for n, s in specs.items()}
    enabled = {n: s for n, s in enabled.items() if n not in refusals}
    problem = validate(user, enabled)
    if problem is not None:
        return Invalid(problem)
    stale = _stale_groups(job, user, specs, config)
    if not stale:
        return NoOp(NoOpReason.UP_TO_DATE, refused)
    try:
        desired = inject(job, specs, config)
    except (CannotInject, UndoError) as err:
        return Invalid(str(err))
    return Apply(
        registrable(desired), "groups to (re)inject or restore: " + ", ".join(stale), refused
    )


def registrable(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job as the controller may submit it: without the user's ``VersionTag``.

    A tag names one version of the user's (``nomad job tag``). Nomad 1.9+ copies the submitted
    tag onto the new version (``command/agent/job_endpoint.go`` ``ApiJobToStructJob``:
    ``VersionTag: ApiJobVersionTagToStructs(job.VersionTag)``), and tagged versions are never
    garbage collected (``nomad/state/state_store.go`` ``upsertJobVersion``): re-registering the
    GET body would put the user's tag on our version too, once per write. Nomad's own revert
    clears it for the same reason (``nomad/job_endpoint.go`` ``Job.Revert``: "Clear out the
    VersionTag to prevent tag duplication"). Without it, our version is untagged and the user's
    tag stays where the user put it.
    """
    out = dict(job)
    out.pop("VersionTag", None)
    return out


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


def validate(user: Mapping[str, Any], enabled: Mapping[str, MeshSpec]) -> str | None:
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
        problem = _validate_group(user, group, spec)
        if problem is not None:
            return f'group "{name}": {problem}'
        for service in fronting.group_inputs(user, group, spec).services:
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


def _validate_group(job: Mapping[str, Any], group: Mapping[str, Any], spec: MeshSpec) -> str | None:
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
        inputs = fronting.group_inputs(job, group, spec)
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
    if not inputs.ports:
        return "is meshed but has no port to front: " + _why_nothing_to_front(job, group)
    problem = _task_port_problem(group, inputs)
    if problem is not None:
        return problem
    for service in inputs.services:
        if service.view.provider == "nomad":
            return (
                f'service "{service.name}" uses provider "nomad"; the mesh registers TLS '
                'ports in Consul, so fronted services need provider "consul"'
            )
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
        if first and not isinstance(first[0], Mapping):
            return "the group's first network is not an object; fix the group's networks"
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


def _stale_groups(
    job: Mapping[str, Any],
    user: Mapping[str, Any],
    specs: Mapping[str, MeshSpec],
    config: MeshConfig,
) -> list[str]:
    """Names of groups whose injected state differs from what the specs ask for."""
    user_groups = {jobview.group_name(g): g for g in jobview.groups(user)}
    stale: list[str] = []
    for group in jobview.groups(job):
        name = jobview.group_name(group)
        spec = specs.get(name)
        if spec is None or not spec.enabled:
            if is_marked(group):
                stale.append(name)
            continue
        expected = spec_hash(spec, config, user, user_groups[name])
        current = jobview.group_meta(group).get(keys.INJECTED_GROUP_META)
        if current != expected or not _objects_present(group, spec):
            stale.append(name)
    return stale


def _objects_present(group: Mapping[str, Any], spec: MeshSpec) -> bool:
    """Our sidecar and every TLS port are still in the group (a hand edit may drop them)."""
    if not any(jobview.is_managed_sidecar(t) for t in jobview.tasks(group)):
        return False
    labels = jobview.ports(group)
    return all(keys.tls_port_label(label) in labels for label in spec.ports)
