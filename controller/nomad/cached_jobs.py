"""The reconcilers' JobStore over the watch-fed cache: reads from memory, writes to Nomad.

controller-runtime's split: a reconciler reads the informer's cache and writes to the API
server. Here the cache (``cache.JobCache``) is kept current by the event source; this store
answers ``get_job``, ``job_allocations``, ``child_allocations``, ``latest_deployment`` and
``job_deployments`` from it, and sends ``register_job`` and ``promote_deployment`` to Nomad
(``NomadJobs``). Writes stay fenced (EnforceIndex), so a stale read costs a lost race and a
retry, never a clobber. What keeps the retries rare:

- read-your-writes: after a register answered JobModifyIndex N, a read of that job waits for
  the Job event of N (at most ``settle`` seconds, then one GET), so the next plan is made
  from our own version, not the one we replaced (which would be a certain Conflict);
- after a Conflict the key is invalidated: the next read GETs it;
- a job the cache does not keep (not interesting to the predicate, or never seen) is read
  from Nomad, once per read: the reconcilers only ask for it after it stopped being
  interesting (one last look) or was deleted — a deletion the cache saw costs nothing;
- until the first whole fill, every read goes to Nomad.

``list_jobs`` lists the kept jobs only: the rotation's inventory of meshed jobs, every one of
which the predicate keeps, without a read per job of the cluster (and the health reconciler's
cluster-wide names), each stub with the ``ModifyIndex`` the job is cached at, so a reader can
tell which jobs changed since it last looked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from controller.nomad.cache import JobCache
from controller.nomad.cache_objects import GONE, key_of
from controller.nomad.errors import Conflict
from controller.nomad.jobs import JobList, NomadJobs
from controller.runtime.clock import Clock, SystemClock, WaitTimeout, wait_for
from crds_equivalent.jobkey import JobKey


class CachedJobs:
    """A ``reconcilers.ports.JobStore`` reading ``cache`` and writing through ``jobs``."""

    def __init__(
        self, cache: JobCache, jobs: NomadJobs, *, clock: Clock | None = None, settle: float = 5.0
    ) -> None:
        self.cache = cache
        self.nomad = jobs
        self.clock: Clock = clock or SystemClock()
        self.settle = settle
        self._waiters: dict[JobKey, asyncio.Event] = {}
        cache.on_job = self._job_changed

    def _job_changed(self, key: JobKey) -> None:
        waiter = self._waiters.pop(key, None)  # one Event per change: every waiter wakes
        if waiter is not None:
            waiter.set()

    async def _caught_up(self, key: JobKey) -> None:
        """Wait (bounded) until the cache holds the version our last register wrote."""
        deadline = self.clock.monotonic() + self.settle
        while key in self.cache.expected:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return
            waiter = self._waiters.setdefault(key, asyncio.Event())
            try:
                await wait_for(self.clock, waiter.wait(), left)
            except WaitTimeout:
                return

    # --- reads ------------------------------------------------------------------------------

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        key = JobKey.of(namespace, job_id)
        if not self.cache.ready:
            return await self.nomad.get_job(job_id, namespace)
        if key in self.cache.expected:
            await self._caught_up(key)
        cached = self.cache.job(key)
        if cached is GONE:
            return None
        if isinstance(cached, dict):
            return cached
        known_at = self.cache.index_of(key)
        job = await self.nomad.get_job(job_id, namespace)
        self.cache.apply_read(key, job, at=known_at)
        self.cache.expected.pop(key, None)  # what Nomad answered is as new as it gets
        found = self.cache.job(key)
        return found if isinstance(found, dict) else job

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        key = JobKey.of(namespace, job_id)
        if not self.cache.ready or not self.cache.kept(key):
            return await self.nomad.job_allocations(job_id, namespace)
        return self.cache.allocations_of(key)

    async def child_allocations(self, parent_id: str, namespace: str) -> list[dict[str, Any]]:
        key = JobKey.of(namespace, parent_id)
        if not self.cache.ready or not self.cache.kept(key):
            return await self.nomad.child_allocations(parent_id, namespace)
        return self.cache.child_allocations(key)

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        """Nomad's ``LatestDeploymentByJobID``: the one with the highest CreateIndex."""
        key = JobKey.of(namespace, job_id)
        if not self.cache.ready or not self.cache.kept(key):
            return await self.nomad.latest_deployment(job_id, namespace)
        found = self.cache.deployments_of(key)
        return found[0] if found else None

    async def job_deployments(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        key = JobKey.of(namespace, job_id)
        if not self.cache.ready or not self.cache.kept(key):
            return await self.nomad.job_deployments(job_id, namespace)
        return self.cache.deployments_of(key)

    async def list_jobs(
        self, namespace: str = "*", *, meta: bool = True, prefix: str | None = None
    ) -> JobList:
        """Stubs of the kept jobs of ``namespace`` (``*``: all): see the module docstring."""
        if not self.cache.ready:
            return await self.nomad.list_jobs(namespace, meta=meta, prefix=prefix)
        stubs: list[dict[str, Any]] = []
        for key in self.cache.kept_keys():
            if namespace not in ("*", key.namespace):
                continue
            if prefix and not key.job_id.startswith(prefix):
                continue
            stubs.append(
                {
                    "ID": key.job_id,
                    "Namespace": key.namespace,
                    "ModifyIndex": self.cache.index_of(key),
                }
            )
        return JobList(stubs=stubs, index=0)

    # --- writes -----------------------------------------------------------------------------

    async def register_job(
        self, job: dict[str, Any], *, enforce_index: int | None
    ) -> dict[str, Any]:
        key = key_of(job, str(job.get("Namespace") or self.nomad.client.namespace or ""))
        try:
            answer = await self.nomad.register_job(job, enforce_index=enforce_index)
        except Conflict:
            self.cache.invalidate(key)
            raise
        index = answer.get("JobModifyIndex")
        if isinstance(index, int) and index:
            self.cache.expect(key, index)
        return answer

    async def promote_deployment(self, deployment_id: str, namespace: str) -> dict[str, Any]:
        return await self.nomad.promote_deployment(deployment_id, namespace)
