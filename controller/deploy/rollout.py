"""Wait for a new version of the system job to run, watching the leader lock meanwhile.

Nomad deploys system jobs only from 1.11 on (a Deployment per version, judged by the update
block's health checks); before that a system job's update is a rolling replacement with no
Deployment object (scheduler/scheduler_system.go). So the rollout is done when Nomad's
deployment of the version is `successful`, or, when Nomad made none, when every live
allocation is of the new version and running. A failed deployment or a failed new allocation
stops the wait with Nomad's reason. While waiting, the lock Variable is read every poll, so
the report can name each failover the upgrade caused (see failover.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.deploy.failover import Failover, Holder, Sample, failovers
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables
from crds_equivalent.keys import VAR_LEADER

LIVE = ("pending", "running")


class RolloutFailed(Exception):
    """The new version did not come up: a failed deployment or allocation, or the timeout."""


@dataclass(frozen=True)
class Progress:
    done: bool
    what: str  # what is being waited for, or how it ended


@dataclass(frozen=True)
class Rollout:
    version: int
    what: str
    before: Holder | None
    after: Holder | None
    failovers: list[Failover]
    job_versions: dict[str, int]  # alloc ID -> job version, for naming holders


def progress(
    allocs: Sequence[Mapping[str, Any]], deployment: Mapping[str, Any] | None, version: int
) -> Progress:
    """PURE: how far job ``version`` got. Raises RolloutFailed when it cannot get further."""
    if deployment is not None and deployment.get("JobVersion") == version:
        status = str(deployment.get("Status") or "")
        why = str(deployment.get("StatusDescription") or status)
        if status == "successful":
            return Progress(True, f"deployment {str(deployment.get('ID'))[:8]} successful")
        if status in ("failed", "cancelled"):
            raise RolloutFailed(f"deployment {deployment.get('ID')} {status}: {why}")
        return Progress(False, f"deployment {str(deployment.get('ID'))[:8]} {status}: {why}")
    wanted = [a for a in allocs if a.get("DesiredStatus") == "run"]
    new = [a for a in wanted if a.get("JobVersion") == version]
    failed = [a for a in new if a.get("ClientStatus") == "failed"]
    if failed:
        raise RolloutFailed(f"allocation {failed[0].get('ID')} of version {version} failed")
    old = [a for a in wanted if a.get("JobVersion") != version and a.get("ClientStatus") in LIVE]
    running = [a for a in new if a.get("ClientStatus") == "running"]
    what = f"{len(running)} of {len(new)} allocation(s) of version {version} running"
    if old:
        return Progress(False, f"{what}, {len(old)} of older versions still live")
    return Progress(bool(new) and len(running) == len(new), what)


async def read_holder(variables: NomadVariables) -> Holder | None:
    """The lock's holder, or None when it is free or was never taken."""
    var = await variables.get(VAR_LEADER)
    if var is None or not var.lock_id:
        return None
    return Holder.from_items(var.items)


async def watch(
    jobs: NomadJobs,
    variables: NomadVariables,
    job_id: str,
    version: int,
    before: Holder | None,
    *,
    within: float,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Rollout:
    """Poll until ``version`` runs and, if a controller led before, one of it leads again."""
    namespace = variables.namespace
    deadline = clock() + within
    samples: list[Sample] = []
    while True:
        samples.append(Sample(clock(), await read_holder(variables)))
        allocs = await jobs.job_allocations(job_id, namespace)
        state = progress(allocs, await jobs.latest_deployment(job_id, namespace), version)
        versions = {str(a["ID"]): int(a.get("JobVersion") or 0) for a in allocs}
        after = samples[-1].holder
        led = before is None or (after is not None and _leads(after, before, versions, version))
        if state.done and led:
            return Rollout(version, state.what, before, after, failovers(before, samples), versions)
        if clock() >= deadline:
            waiting = state.what if not state.done else "a controller of the new version to lead"
            raise RolloutFailed(f"not done after {within:g}s: waiting for {waiting}")
        await sleep(poll)


def _leads(holder: Holder, before: Holder, versions: Mapping[str, int], version: int) -> bool:
    """The holder runs the new job version (by its allocation; a holder that does not name
    its allocation counts once it is someone new)."""
    if holder.alloc:
        return versions.get(holder.alloc) == version
    return holder != before
