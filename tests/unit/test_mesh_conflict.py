"""MeshReconciler under the Controller: an EnforceIndex conflict is looked at again by itself.

The conflicting writer's event normally re-enqueues the job, but when that event is missed the
reconciler's own requeue is the only thing between the job and the next resync (minutes).
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

    def __init__(self, job: dict[str, Any], conflicts: int) -> None:
        self.job = {**job, "Namespace": "default", "Version": 0, "JobModifyIndex": 10}
        self.conflicts = conflicts

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.job)

    async def register_job(
        self, job: dict[str, Any], *, enforce_index: int | None
    ) -> dict[str, Any]:
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


async def test_a_conflict_is_retried_without_any_new_event() -> None:
    clock = FakeClock()
    jobs = Jobs(json.loads(JOB.read_text())["Job"], conflicts=1)
    reconciler = MeshReconciler(jobs, Statuses(), MeshConfig(), clock=clock, rollout_poll=60.0)
    registry = CollectorRegistry()
    queue: WorkQueue[tuple[str, str]] = WorkQueue(
        name="t", clock=clock, limiter=default_limiter(clock), registry=registry
    )
    controller = Controller(
        name="t", reconciler=reconciler, queue=queue, clock=clock, workers=1, registry=registry
    )
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
