"""PURE: has the injected job version actually rolled out?

Registering the sidecar is not the same as running it. For a version Nomad deploys (a service
job with an update block), only Nomad's verdict counts: ``successful`` once every allocation
passed its health checks for ``min_healthy_time``, ``failed`` otherwise. Running allocations
are not that verdict — they run long before their checks pass — so while the deployment of the
current version is still being judged, the version is not rolled out, whatever runs. Versions
Nomad does not deploy (system, sysbatch and batch jobs; a service group without an update
block) have no verdict to wait for, so there we count running allocations of the current
version that run the sidecar against the desired count; a periodic or parameterized parent
rolls out by being stored (``LaunchesChildren``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crds_equivalent import keys
from crds_equivalent.status import ROLLING_OUT, Condition, ConditionType
from reconcilers.conditions import condition
from reconcilers.injection import jobview
from reconcilers.mesh.retry import ROLLBACK_MARK


def rolled_out(
    job: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    allocations: Sequence[Mapping[str, Any]],
) -> Condition:
    """The RolledOut condition for `job` given its latest deployment and allocations.

    A periodic or parameterized parent never places allocations (Nomad's scheduler is never
    asked to: ``Job.Register`` creates no evaluation for either, ``nomad/job_endpoint.go``), so
    there is nothing to roll out: the stored version *is* the rollout, because every child
    launched from now on is derived from it (``PeriodicDispatch.deriveJob``, ``Job.Dispatch``).
    Children already running keep the version they were launched with, as Nomad intends.
    """
    version = job.get("Version")
    if jobview.launches_children(job):
        return condition(
            ConditionType.ROLLED_OUT,
            True,
            "LaunchesChildren",
            f"version {version} is what every new periodic or dispatched child is derived from",
        )
    if deployment is not None and deployment.get("JobVersion") == version:
        status = deployment.get("Status")
        description = str(deployment.get("StatusDescription") or "")
        if status == "successful":
            return condition(ConditionType.ROLLED_OUT, True, "DeploymentSuccessful", description)
        if status in ("failed", "cancelled"):
            return condition(ConditionType.ROLLED_OUT, False, "DeploymentFailed", description)
        if status == "running" and awaits_promotion(deployment):
            return condition(
                ConditionType.ROLLED_OUT,
                False,
                AWAITING_PROMOTION,
                f"waiting for canary promotion of deployment {deployment.get('ID')}",
            )
        if status in JUDGING:
            message = (
                f"waiting for deployment {deployment.get('ID')} ({deployment_health(deployment)})"
            )
            waiting = _sidecar_says(job, allocations)
            if waiting:
                message += f"; sidecar: {waiting}"
            return condition(ConditionType.ROLLED_OUT, False, ROLLING_OUT, message)
    running, desired = _sidecar_allocs(job, allocations)
    message = f"{running}/{desired} allocations of version {version} run the sidecar"
    if desired and running >= desired:
        return condition(ConditionType.ROLLED_OUT, True, "AllocationsRunning", message)
    waiting = _sidecar_says(job, allocations)
    if waiting:  # e.g. "Missing: vault.pki(...)" while Vault is sealed: say why, not just that
        message += f"; sidecar: {waiting}"
    return condition(ConditionType.ROLLED_OUT, False, ROLLING_OUT, message)


AWAITING_PROMOTION = "AwaitingPromotion"

# Deployment statuses under which Nomad has not judged the version yet
# (``nomad/structs/deployment.go``: running, paused, pending, blocked, unblocking, initializing).
JUDGING = frozenset({"running", "paused", "pending", "blocked", "unblocking", "initializing"})


def deployment_health(deployment: Mapping[str, Any]) -> str:
    """``h/d healthy`` over the deployment's groups, as Nomad counts them (``HealthyAllocs`` of
    ``DesiredTotal``): how far the judgement got."""
    groups = deployment.get("TaskGroups")
    states = (
        [g for g in groups.values() if isinstance(g, Mapping)]
        if isinstance(groups, Mapping)
        else []
    )
    healthy = sum(int(g.get("HealthyAllocs") or 0) for g in states)
    desired = sum(int(g.get("DesiredTotal") or 0) for g in states)
    return f"{healthy}/{desired} healthy"


def _canary_groups(deployment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    groups = deployment.get("TaskGroups")
    if not isinstance(groups, Mapping):
        return []
    return [
        g
        for g in groups.values()
        if isinstance(g, Mapping) and int(g.get("DesiredCanaries") or 0) > 0
    ]


def awaits_promotion(deployment: Mapping[str, Any]) -> bool:
    """A running deployment with canaries that nobody will promote by themselves: Nomad's
    ``Deployment.RequiresPromotion`` (a group wants canaries and is not promoted) minus the
    groups Nomad auto-promotes (``autoPromoteDeployment`` needs every canary group to say so)."""
    groups = _canary_groups(deployment)
    unpromoted = [g for g in groups if not g.get("Promoted")]
    return bool(unpromoted) and not all(g.get("AutoPromote") for g in groups)


def canaries_healthy(deployment: Mapping[str, Any]) -> bool:
    """Every canary group has placed its canaries and they are healthy: what Nomad's promote
    demands (``Task group "x" has 0/1 healthy allocations`` otherwise)."""
    groups = _canary_groups(deployment)
    return bool(groups) and all(
        len(jobview.as_list(g.get("PlacedCanaries"))) >= int(g.get("DesiredCanaries") or 0)
        and int(g.get("HealthyAllocs") or 0) >= int(g.get("DesiredCanaries") or 0)
        for g in groups
        if not g.get("Promoted")
    )


def own_deployment(
    deployments: Sequence[Mapping[str, Any]], written_index: int
) -> Mapping[str, Any] | None:
    """The deployment Nomad created for the controller's last write: ``NewDeployment`` copies
    the job's ``JobModifyIndex`` into ``JobSpecModifyIndex`` (``nomad/structs/deployment.go``),
    and the register answered that index."""
    if not written_index:
        return None
    return next(
        (d for d in deployments if int(d.get("JobSpecModifyIndex") or 0) == written_index), None
    )


def reverted_by_nomad(
    job: Mapping[str, Any], deployments: Sequence[Mapping[str, Any]], written_index: int
) -> Mapping[str, Any] | None:
    """The controller's failed deployment when Nomad's auto-revert registered the job's current
    version: the watcher registers the last stable version as ``Version + 1`` in the same
    transaction that fails the deployment (``DeploymentStatusUpdate``), with the description
    ``... - rolling back to job version N``. A later version is somebody's newer write."""
    mine = own_deployment(deployments, written_index)
    if mine is None or mine.get("Status") != "failed":
        return None
    if ROLLBACK_MARK not in str(mine.get("StatusDescription") or ""):
        return None
    version = job.get("Version")
    failed = mine.get("JobVersion")
    if isinstance(version, int) and isinstance(failed, int) and version == failed + 1:
        return mine
    return None


SAYS_LIMIT = 200


def _sidecar_says(job: Mapping[str, Any], allocations: Sequence[Mapping[str, Any]]) -> str:
    """The most telling task event of a sidecar of this version that is not running yet.

    An event that failed the task (``FailsTask``: e.g. ``Vault: failed to derive vault token``)
    says why; Nomad's ``Alloc Unhealthy`` events only restate the verdict ("Unhealthy because
    of failed task") and rank last. Among equals, the latest wins.
    """
    best: tuple[int, int, str] | None = None
    for alloc in allocations:
        if alloc.get("JobVersion") != job.get("Version") or alloc.get("DesiredStatus") != "run":
            continue
        states = alloc.get("TaskStates")
        state = states.get(keys.SIDECAR_TASK) if isinstance(states, Mapping) else None
        if not isinstance(state, Mapping) or state.get("State") == "running":
            continue
        for event in jobview.as_list(state.get("Events")):
            if not isinstance(event, Mapping):
                continue
            text = str(event.get("DisplayMessage") or event.get("Message") or "")
            when = event.get("Time")
            at = when if isinstance(when, int) else 0
            rank = _telling(event)
            if text and (best is None or (rank, at) >= (best[0], best[1])):
                best = (rank, at, text)
    if best is None:
        return ""
    text = best[2]
    return text if len(text) <= SAYS_LIMIT else text[:SAYS_LIMIT] + "…"


def _telling(event: Mapping[str, Any]) -> int:
    """2: the event failed the task; 0: Nomad's restated health verdict; 1: anything else."""
    if event.get("FailsTask") is True:
        return 2
    return 0 if event.get("Type") == "Alloc Unhealthy" else 1


def _sidecar_allocs(
    job: Mapping[str, Any], allocations: Sequence[Mapping[str, Any]]
) -> tuple[int, int]:
    version = job.get("Version")
    meshed = {
        jobview.group_name(g)
        for g in jobview.groups(job)
        if any(jobview.is_managed_sidecar(t) for t in jobview.tasks(g))
    }
    desired = 0
    for group in jobview.groups(job):
        if jobview.group_name(group) in meshed:
            count = group.get("Count")
            desired += count if isinstance(count, int) else 1
    if job.get("Type") == "system":
        desired = 0  # one per eligible node: count what the scheduler placed instead
    running = 0
    placed = 0
    for alloc in allocations:
        if alloc.get("JobVersion") != version or alloc.get("TaskGroup") not in meshed:
            continue
        if alloc.get("DesiredStatus") != "run":
            continue
        placed += 1
        states = alloc.get("TaskStates") or {}
        sidecar = states.get(keys.SIDECAR_TASK) if isinstance(states, Mapping) else None
        sidecar_running = isinstance(sidecar, Mapping) and sidecar.get("State") == "running"
        if alloc.get("ClientStatus") == "running" and sidecar_running:
            running += 1
    return running, desired or placed
