"""The ceiling of the control-plane benchmark: the contract's minimum, done by a bare client.

DESIGN §10's yardstick: per job, GET it, register the injected job with EnforceIndex, and write
one status Variable with check-and-set, at the controller's concurrency against the same twin.
No controller can do less and keep the contract (fenced job writes, a durable status record),
so the cold start's throughput over this one is the headline ratio.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import psutil

from bench.cp_phases import bounded
from bench.procs import Api, cpu_seconds, delta
from crds_equivalent.config import MeshConfig
from crds_equivalent.keys import INJECTED_GROUP_META, status_path
from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase
from reconcilers.injection.plan import Apply, plan_job


async def ceiling_bodies(
    api: Api, namespace: str, ids: Sequence[str], config: MeshConfig
) -> dict[str, dict[str, Any]]:
    """Untimed: the injected body of each stored job, as the controller would compute it."""
    bodies: dict[str, dict[str, Any]] = {}

    async def prepare(job_id: str) -> None:
        decision = plan_job(await api.get_job(job_id, namespace), config)
        assert isinstance(decision, Apply), decision
        bodies[job_id] = decision.job

    await bounded(16, ids, prepare)
    return bodies


def status_items(job: dict[str, Any]) -> dict[str, str]:
    """The status record the mesh reconciler writes once it has injected ``job`` (phase
    Injected, spec valid, sidecar injected, rollout pending): the ceiling writes one of the
    same size, so its Variable PUT costs the twin what the controller's does."""
    now = dt.datetime.now(dt.UTC).isoformat()
    marker = next((g["Meta"][INJECTED_GROUP_META] for g in job["TaskGroups"] if g.get("Meta")), "")

    def cond(kind: ConditionType, status: ConditionStatus, reason: str) -> Condition:
        return Condition(type=kind, status=status, reason=reason, last_transition=now)

    record = MeshStatus(
        phase=Phase.INJECTED,
        observed_index=1,
        spec_hash=marker,
        conditions=(
            cond(ConditionType.SPEC_VALID, ConditionStatus.TRUE, "Valid"),
            cond(ConditionType.SIDECAR_INJECTED, ConditionStatus.TRUE, "Injected"),
            cond(ConditionType.ROLLED_OUT, ConditionStatus.UNKNOWN, "DeploymentRunning"),
        ),
        message="sidecar injected; waiting for the deployment",
        updated_at=now,
        written_index=1,
    )
    return record.to_items()


async def ceiling(
    api: Api,
    twin: psutil.Process,
    namespace: str,
    bodies: dict[str, dict[str, Any]],
    concurrency: int,
) -> dict[str, Any]:
    """A bare client doing the contract's minimum per job (DESIGN §10): GET it, POST the
    injected job with EnforceIndex, PUT its status Variable with check-and-set (a new record:
    cas=0). Bodies and records are computed beforehand (untimed) so only the calls are
    measured. The records go to ``namespace``, which the controller under test never lists."""
    ids = list(bodies)
    records = {job_id: status_items(body) for job_id, body in bodies.items()}
    before = await api.requests()

    async def one(job_id: str) -> None:
        job = await api.get_job(job_id, namespace)
        reg = await api.register(bodies[job_id], enforce_index=int(job["JobModifyIndex"]))
        index = str(reg["JobModifyIndex"])
        items = {**records[job_id], "observed_index": index, "written_index": index}
        await api.put_var(status_path(namespace, job_id), namespace, items, cas=0)

    me = psutil.Process()
    cpu0, own0 = cpu_seconds(twin), cpu_seconds(me)
    start = time.monotonic()
    await bounded(concurrency, ids, one)
    seconds = time.monotonic() - start
    cpu1, own1 = cpu_seconds(twin), cpu_seconds(me)
    calls = delta(await api.requests(), before)
    return {
        "jobs": len(ids),
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "twin_cpu_share": round((cpu1 - cpu0) / seconds, 2),
        "driver_cpu_share": round((own1 - own0) / seconds, 2),
        "jobs_per_s": round(len(ids) / seconds, 1),
        "calls": calls,
        "calls_per_job": round(sum(calls.values()) / len(ids), 2),
    }
