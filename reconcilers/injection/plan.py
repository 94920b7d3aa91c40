"""PURE: decide what a job needs — NoOp | Apply(job) | Remove(job) | Invalid(reason).

The planner never looks at the job as a whole to see whether it is up to date (Nomad
canonicalises jobs on register, so it never equals what we sent); it compares each meshed
group's marker hash with the hash of the user's current inputs, and checks our objects are
still there. An invalid spec never touches the job; the reason names the group and what to fix,
in the same style as crds_equivalent.spec.SpecError. The rules themselves are in ``validate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.goparse import parse_go_duration
from crds_equivalent.spec import MeshSpec, SpecError, parse_job_specs
from reconcilers.injection import edges, fronting, jobview
from reconcilers.injection.grant import CannotBind, Grant, job_grant
from reconcilers.injection.inject import (
    CannotInject,
    UndoError,
    inject_user,
    is_marked,
    spec_hash,
    uninject,
)
from reconcilers.injection.validate import connect_refusals, validate


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
    # UP_TO_DATE: the job's certificate grant, kept in step even when the job is not rewritten.
    # Derived from the job like the decision itself, so it takes no part in comparing them.
    grant: Grant | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Apply:
    job: dict[str, Any] = field(repr=False)
    reason: str = ""
    refused: tuple[str, ...] = ()
    # The PKI role and names the job's sidecars issue from: granted before the register.
    grant: Grant | None = field(default=None, compare=False)


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
    return plan(job, specs, config, user=user)


def plan(
    job: Mapping[str, Any],
    specs: Mapping[str, MeshSpec] | SpecError,
    config: MeshConfig,
    *,
    user: dict[str, Any] | None = None,
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
    if user is None:  # plan_job passes the un-injected job it parsed the specs from
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
    inputs_of = fronting.InputsMemo()  # each group's inputs read once for every step below
    problem = validate(user, enabled, inputs_of)
    if problem is not None:
        return Invalid(problem)
    try:
        grant = job_grant(user, enabled, config, inputs_of)
    except CannotBind as err:
        return Invalid(str(err))
    markers: dict[str, str] = {}
    stale = _stale_groups(job, user, specs, config, inputs_of, markers)
    if not stale:
        return NoOp(NoOpReason.UP_TO_DATE, refused, grant)
    try:
        desired = inject_user(user, specs, config, inputs_of=inputs_of, markers=markers)
    except (CannotInject, UndoError) as err:
        return Invalid(str(err))
    return Apply(
        registrable(desired),
        "groups to (re)inject or restore: " + ", ".join(stale),
        refused,
        grant,
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
    tag stays where the user put it. A null tag names nothing and is left as the user wrote it,
    so ``render`` then ``render --uninject`` gives back the user's document exactly.
    """
    out = dict(job)
    if out.get("VersionTag") is not None:
        del out["VersionTag"]
    return out


def _stale_groups(
    job: Mapping[str, Any],
    user: Mapping[str, Any],
    specs: Mapping[str, MeshSpec],
    config: MeshConfig,
    inputs_of: fronting.InputsOf,
    markers: dict[str, str],
) -> list[str]:
    """Names of groups whose injected state differs from what the specs ask for; the marker
    each enabled group should carry is put in ``markers`` (the injection writes it)."""
    user_groups = {jobview.group_name(g): g for g in jobview.groups(user)}
    stale: list[str] = []
    for group in jobview.groups(job):
        name = jobview.group_name(group)
        spec = specs.get(name)
        if spec is None or not spec.enabled:
            if is_marked(group):
                stale.append(name)
            continue
        user_group = user_groups[name]
        expected = spec_hash(spec, config, user, user_group, inputs_of(user, user_group, spec))
        markers[name] = expected
        current = jobview.group_meta(group).get(keys.INJECTED_GROUP_META)
        if current != expected or not _objects_present(group, spec):
            stale.append(name)
    return stale


def _objects_present(group: Mapping[str, Any], spec: MeshSpec) -> bool:
    """Our sidecar and every TLS port are still in the group (a hand edit may drop them)."""
    if not any(jobview.is_managed_sidecar(t) for t in jobview.tasks(group)):
        return False
    labels = jobview.ports(group)
    if not all(keys.tls_port_label(label) in labels for label in spec.ports):
        return False
    if edges.group_namespaced(group):
        return True
    return all(keys.upstream_port_label(u.port) in labels for u in spec.upstreams)
