"""PURE: the job version that makes Nomad issue fresh leaves — a new rotation nonce.

A leaf that will not renew by itself (a lost template watcher, an intermediate being rotated)
is replaced by giving the meshed groups a new ``mesh.tls.rotation`` nonce. The nonce is an
input of the injection: it lands in the group's meta, in the marker hash and, as a comment, in
the certificate template. So the result is exactly what ``inject`` makes of the user's job
with that nonce — the MeshReconciler sees its own hash and does nothing — and Nomad sees new
template text and replaces the allocations under the job's update block, each new one issuing
its own leaf from the (then) default issuer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import SpecError, parse_job_specs
from reconcilers.injection import jobview, rewrite
from reconcilers.injection.hashing import rotation_nonce
from reconcilers.injection.inject import CannotInject, UndoError, inject, uninject
from reconcilers.injection.plan import default_ttl_seconds


class CannotReissue(ValueError):
    """The job is not (validly) meshed, so there is no certificate template to re-issue."""


def meshed_groups(job: Mapping[str, Any], config: MeshConfig) -> list[str]:
    """Names of the job's groups the mesh fronts ([] when unmeshed or invalid)."""
    try:
        specs = parse_job_specs(uninject(job), default_ttl_seconds=default_ttl_seconds(config))
    except (UndoError, SpecError):
        return []
    return [name for name, spec in specs.items() if spec.enabled]


def nonces(job: Mapping[str, Any], config: MeshConfig) -> dict[str, str]:
    """The rotation nonce of each meshed group ("" where none was ever set)."""
    wanted = set(meshed_groups(job, config))
    return {
        jobview.group_name(g): rotation_nonce(g)
        for g in jobview.groups(job)
        if jobview.group_name(g) in wanted
    }


def carries(job: Mapping[str, Any], nonce: str, config: MeshConfig) -> bool:
    """Every meshed group already carries ``nonce`` (a resumed rotation must not roll twice)."""
    found = nonces(job, config)
    return bool(found) and all(value == nonce for value in found.values())


def with_nonce(
    job: Mapping[str, Any],
    nonce: str,
    config: MeshConfig,
    groups: Collection[str] | None = None,
) -> dict[str, Any]:
    """The injected job whose meshed groups (or only ``groups``) carry ``nonce``.

    Raises CannotReissue when the job is not validly meshed.
    """
    if not nonce:
        raise ValueError("a rotation nonce must not be empty")
    try:
        user = uninject(job)
        specs = parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(config))
    except (UndoError, SpecError) as err:
        raise CannotReissue(str(err)) from None
    enabled = {name for name, spec in specs.items() if spec.enabled}
    targets = enabled if groups is None else enabled & set(groups)
    if not targets:
        raise CannotReissue("no meshed group to re-issue")
    groups = jobview.as_list(user.get("TaskGroups"))
    for index, group in enumerate(groups):
        if isinstance(group, dict) and jobview.group_name(group) in targets:
            group = groups[index] = dict(group)  # uninject shares unchanged groups with job
            meta = dict(jobview.group_meta(group))
            meta[keys.ROTATION_GROUP_META] = nonce
            rewrite.set_ordered(group, "Meta", meta, rewrite.GROUP_ORDER)
    try:
        return inject(user, specs, config)
    except (CannotInject, UndoError) as err:
        raise CannotReissue(str(err)) from None
