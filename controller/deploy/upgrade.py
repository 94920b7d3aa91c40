"""The install's job step, upgrade-aware: plan, register, wait for the rollout, name the failover.

A first install and an upgrade are the same step: the job (at the version asked for) is planned
with a diff; when Nomad reports a change it is registered with EnforceIndex at the planned
JobModifyIndex. Then, unless told not to wait, the install waits for the new version to run
(rollout.py) and reports which controller held the leader lock before and after and how long
nobody did, so an operator sees the cost of the upgrade instead of guessing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.deploy.failover import failover_lines
from controller.deploy.jobversion import job_version
from controller.deploy.nomad_install import ensure_job
from controller.deploy.rollout import read_holder, watch
from controller.deploy.steps import InstallReport
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables

POLL = 0.5


async def apply_job(
    jobs: NomadJobs,
    variables: NomadVariables,
    job: Mapping[str, Any],
    report: InstallReport,
    *,
    wait: bool = True,
    within: float = 600.0,
) -> None:
    """ensure_job, then (when it registered and ``wait``) the rollout and its failovers."""
    before = await read_holder(variables)
    if not await ensure_job(jobs, job, report) or not wait:
        return
    job_id, namespace = str(job["ID"]), variables.namespace
    stored = await jobs.get_job(job_id, namespace) or {}
    version = int(stored.get("Version") or 0)
    rollout = await watch(jobs, variables, job_id, version, before, within=within, poll=POLL)
    lines = failover_lines(
        rollout.before, rollout.after, rollout.failovers, rollout.job_versions, POLL
    )
    meta = job_version(stored)
    label = f"job version {version}" + (f" (meta.version {meta})" if meta else "")
    report.changed(f"Nomad: rolled out {label}: {rollout.what}", detail=tuple(lines))
