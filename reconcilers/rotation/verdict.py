"""PURE: has a job finished its part of a CA rotation — every instance on the new issuer?

A job is done when every running allocation of its meshed groups is registered on its TLS port,
passing in Consul, and serves a leaf that verifies against the root and was signed by the new
issuer (its Authority Key Identifier is the new issuer's Subject Key Identifier). It has failed
when Nomad's deployment of the version the rotation wrote failed: Nomad stops there, and so must
the rotation. Anything else is "not yet" — the engine bounds the wait with a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconcilers.injection import jobview
from reconcilers.instances.observe import Observation

DONE = "done"
WAITING = "waiting"
FAILED = "failed"


@dataclass(frozen=True)
class JobVerdict:
    state: str
    reason: str = ""


def _desired(job: Mapping[str, Any], groups: set[str]) -> int:
    total = 0
    for group in jobview.groups(job):
        if jobview.group_name(group) in groups:
            count = group.get("Count")
            total += int(count) if isinstance(count, int) else 1
    return total


def judge_job(
    seen: Observation,
    new_key_id: str,
    deployment: Mapping[str, Any] | None,
    written_index: int,
) -> JobVerdict:
    """Where one job of a wave stands (``written_index``: JobModifyIndex the rotation wrote)."""
    job = seen.job
    if job is None:
        return JobVerdict(DONE, "the job is gone")
    if jobview.is_stopped(job):
        return JobVerdict(DONE, "the job is stopped")
    if not seen.meshed:
        return JobVerdict(DONE, "the job is no longer meshed")
    if (
        deployment is not None
        and int(deployment.get("JobModifyIndex") or 0) >= written_index
        and str(deployment.get("Status")) in ("failed", "cancelled")
    ):
        why = str(deployment.get("StatusDescription") or deployment.get("Status"))
        return JobVerdict(FAILED, f"deployment {str(deployment.get('ID'))[:8]}: {why}")
    if seen.findings is None:
        return JobVerdict(WAITING, seen.problem or "Consul did not answer")
    groups = {p.group for p in seen.ports}
    desired = _desired(job, groups)
    if desired == 0:
        return JobVerdict(DONE, "no instance is meant to run")
    running = sum(len(seen.running.get(g, ())) for g in groups)
    if running < desired:
        return JobVerdict(WAITING, f"{running}/{desired} allocation(s) running")
    if seen.findings.unhealthy:
        return JobVerdict(WAITING, seen.findings.unhealthy[0][1])
    if seen.findings.hidden:  # an instance the token cannot see may still serve the old leaf
        return JobVerdict(WAITING, "Consul's ACLs hide " + seen.findings.hidden[0])
    old = 0
    for _, result in seen.probed:
        if not result.ok or result.leaf is None:
            return JobVerdict(WAITING, f"{result.target}: {result.outcome} {result.detail}")
        if result.leaf.authority_key_id != new_key_id:
            old += 1
    if old:
        return JobVerdict(WAITING, f"{old} instance(s) still serve a leaf of the old issuer")
    if not seen.probed:
        return JobVerdict(WAITING, "no TLS instance registered yet")
    return JobVerdict(DONE, f"{len(seen.probed)} instance(s) on the new issuer")


def old_leaves(seen: Observation, old_key_id: str) -> int:
    """How many instances still serve a leaf signed by the old issuer."""
    return sum(
        1
        for _, result in seen.probed
        if result.leaf is not None and result.leaf.authority_key_id == old_key_id
    )
