"""MeshReconciler under the Controller: an EnforceIndex conflict is looked at again by itself.

The conflicting writer's event normally re-enqueues the job, but when that event is missed the
reconciler's own requeue is the only thing between the job and the next resync (minutes). That
requeue goes through the key's backoff, so a job that keeps changing under us is retried less
and less often instead of every half second forever.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.nomad.errors import Conflict
from controller.runtime import Controller, FakeClock, WorkQueue, default_limiter
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.status import MeshStatus
from reconcilers.mesh.reconciler import MeshReconciler

pytestmark = pytest.mark.timeout(20)

JOB = Path(__file__).parents[1] / "fixtures" / "jobs" / "example-short-meshed-host-docker.in.json"


class Jobs:
    """Nomad's job store, where the first fenced register loses a race (and no event follows)."""

    def __init__(self, job: dict[str, Any], conflicts: int, clock: FakeClock) -> None:
        self.job = {**job, "Namespace": "default", "Version": 0, "JobModifyIndex": 10}
        self.conflicts = conflicts
        self.clock = clock
        self.attempts: list[float] = []  # when each fenced register was tried

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.job)

    async def register_job(
        self, job: dict[str, Any], *, enforce_index: int | None
    ) -> dict[str, Any]:
        self.attempts.append(self.clock.monotonic())
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("Enforcing job modify index 10: job exists with conflicting index")
        assert enforce_index == self.job["JobModifyIndex"]
        index = self.job["JobModifyIndex"] + 1
        self.job = {**job, "Version": self.job["Version"] + 1, "JobModifyIndex": index}
        return {"JobModifyIndex": index}

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        return []

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return None


class Statuses:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], MeshStatus] = {}

    async def get(self, namespace: str, job: str) -> MeshStatus | None:
        return self.records.get((namespace, job))

    async def peek(self, namespace: str, job: str) -> MeshStatus | None:
        return await self.get(namespace, job)

    async def update(
        self, namespace: str, job: str, fn: Callable[[MeshStatus | None], MeshStatus | None]
    ) -> MeshStatus | None:
        status = fn(await self.get(namespace, job))
        if status is not None:
            await self.write(namespace, job, status)
        return await self.get(namespace, job)

    async def write(self, namespace: str, job: str, status: MeshStatus) -> bool:
        self.records[(namespace, job)] = status
        return True

    async def delete(self, namespace: str, job: str) -> bool:
        return self.records.pop((namespace, job), None) is not None


def _controller(
    clock: FakeClock, jobs: Jobs, registry: CollectorRegistry
) -> tuple[WorkQueue[tuple[str, str]], Controller[tuple[str, str]]]:
    reconciler = MeshReconciler(jobs, Statuses(), MeshConfig(), clock=clock, rollout_poll=60.0)
    queue: WorkQueue[tuple[str, str]] = WorkQueue(
        name="t", clock=clock, limiter=default_limiter(clock, base=0.5), registry=registry
    )
    controller = Controller(
        name="t", reconciler=reconciler, queue=queue, clock=clock, workers=1, registry=registry
    )
    return queue, controller


async def test_a_conflict_is_retried_without_any_new_event() -> None:
    clock = FakeClock()
    jobs = Jobs(json.loads(JOB.read_text())["Job"], conflicts=1, clock=clock)
    queue, controller = _controller(clock, jobs, CollectorRegistry())
    task = asyncio.create_task(controller.run())
    try:
        queue.add(("default", "example"))
        await clock.settle()
        assert jobs.job["Version"] == 0  # lost the race; nothing else will enqueue the key
        await clock.advance(1.0)
        assert jobs.job["Version"] == 1
        group = jobs.job["TaskGroups"][0]
        assert any(t["Name"] == keys.SIDECAR_TASK for t in group["Tasks"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_repeated_conflicts_back_off_exponentially_then_converge() -> None:
    clock = FakeClock()
    jobs = Jobs(json.loads(JOB.read_text())["Job"], conflicts=4, clock=clock)
    registry = CollectorRegistry()
    queue, controller = _controller(clock, jobs, registry)
    key = ("default", "example")
    task = asyncio.create_task(controller.run())
    try:
        queue.add(key)
        await clock.advance(0.5 + 1.0 + 2.0 + 4.0)
        start = jobs.attempts[0]
        gaps = [b - a for a, b in zip(jobs.attempts, jobs.attempts[1:], strict=False)]
        assert gaps == [0.5, 1.0, 2.0, 4.0]  # the per-key backoff, not a fixed 0.5 s loop
        assert jobs.attempts[-1] - start == 7.5
        assert jobs.job["Version"] == 1  # converged on the fifth try
        assert queue.num_requeues(key) == 0  # and the backoff was forgotten
        counts = {
            result: registry.get_sample_value(
                "controller_reconcile_total", {"controller": "t", "result": result}
            )
            for result in ("requeue", "error", "requeue_after")
        }
        # conflicts are requeues, not errors; the success waits on the rollout
        assert counts == {"requeue": 4.0, "error": 0.0, "requeue_after": 1.0}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
