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
from reconcilers.injection import fronting, jobview
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
    NOT_MESHED = "not meshed"
    UP_TO_DATE = "up to date"


@dataclass(frozen=True)
class NoOp:
    reason: NoOpReason


@dataclass(frozen=True)
class Apply:
    job: dict[str, Any] = field(repr=False)
    reason: str = ""


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
    """``specs`` are parsed from ``uninject(job)`` (or the SpecError that parsing raised)."""
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
            return Remove(user, "mesh.tls is off for every group")
        return NoOp(NoOpReason.NOT_MESHED)
    problem = validate(user, enabled)
    if problem is not None:
        return Invalid(problem)
    stale = _stale_groups(job, user, specs, config)
    if not stale:
        return NoOp(NoOpReason.UP_TO_DATE)
    try:
        desired = inject(job, specs, config)
    except (CannotInject, UndoError) as err:
        return Invalid(str(err))
    return Apply(desired, "groups to (re)inject or restore: " + ", ".join(stale))


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


def _validate_group(job: Mapping[str, Any], group: Mapping[str, Any], spec: MeshSpec) -> str | None:
    twice = _first_duplicate(jobview.task_name(t) for t in jobview.tasks(group))
    if twice is not None:
        return f'task "{twice}" is defined twice: task names must be unique in a group'
    for task in jobview.tasks(group):
        if jobview.task_name(task) == keys.SIDECAR_TASK:
            return f'task name "{keys.SIDECAR_TASK}" is reserved for the mesh sidecar; rename it'
    for label in jobview.ports(group):
        if label.startswith(keys.TLS_PORT_PREFIX):
            return (
                f'port label "{label}" uses the prefix "{keys.TLS_PORT_PREFIX}" reserved for '
                "the mesh's TLS ports; rename it"
            )
    try:
        inputs = fronting.group_inputs(job, group, spec)
    except jobview.UnresolvedName as err:
        return f"{err}, which is only known at run time; the certificate needs the name now"
    if inputs.missing_labels:
        return (
            f'meta "{keys.MESH_TLS_PORTS}" names port labels the group\'s networks do not '
            f"declare: {', '.join(inputs.missing_labels)}"
        )
    if not inputs.ports:
        return (
            "is meshed but has no port to front: no service uses a port of the group's "
            f'network; declare one or set meta "{keys.MESH_TLS_PORTS}"'
        )
    for service in inputs.services:
        if service.view.provider == "nomad":
            return (
                f'service "{service.name}" uses provider "nomad"; the mesh registers TLS '
                'ports in Consul, so fronted services need provider "consul"'
            )
        if service.view.address_mode == "driver":
            return (
                f'service "{service.name}" uses address_mode "driver"; the TLS port belongs '
                "to the sidecar, not to the app's driver"
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
