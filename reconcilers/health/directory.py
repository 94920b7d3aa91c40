"""The names a caller can be let in by, cluster-wide: every service a meshed job fronts and
every pure client's name (its job ID). A ``mesh.tls.allow`` name outside this set is a warning.

Cost. The set spans every meshed job, but each health pass judges one job, so it is computed
at most once per ``ttl`` (the health interval) and shared by every pass and worker in between,
behind one lock. The listing comes from the JobLister the controller already has (the
watch-fed cache: no Nomad request once it is filled), and each job's names are kept with the
``ModifyIndex`` the listing gives, so a refresh parses only the jobs that changed. A listing
that fails keeps the last set (or None before the first: no warning is better than a false
one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import structlog

from controller.nomad.errors import NomadError
from controller.runtime.clock import Clock
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from reconcilers.injection import jobview
from reconcilers.injection.identity import BadClientName, pure_client_name
from reconcilers.injection.userspecs import user_specs
from reconcilers.instances.matching import fronted_ports_of
from reconcilers.ports import JobLister, JobStore

log = structlog.get_logger(__name__)


def mesh_names(job: Mapping[str, Any], config: MeshConfig) -> frozenset[str]:
    """PURE: the names one job's meshed groups can call with: the services they front and, for
    a group that fronts nothing and calls upstreams, the job's pure-client name."""
    parsed = user_specs(job, config)  # once, for the ports and the specs alike
    if parsed is None:
        return frozenset()
    ports = fronted_ports_of(parsed, config)
    names = {p.service.lower() for p in ports}
    fronting = {p.group for p in ports}
    for spec in parsed.specs.values():
        if spec.enabled and spec.upstreams and spec.group not in fronting:
            with contextlib.suppress(BadClientName):  # the mesh reconciler says Invalid
                names.add(pure_client_name(jobview.job_id(parsed.user)))
    return frozenset(names)


class MeshNames:
    """The cluster-wide set of names, refreshed at most once per ``ttl`` seconds."""

    def __init__(
        self, lister: JobLister, jobs: JobStore, config: MeshConfig, clock: Clock, ttl: float
    ) -> None:
        self.lister, self.jobs, self.config, self.clock, self.ttl = lister, jobs, config, clock, ttl
        self._lock = asyncio.Lock()
        self._names: frozenset[str] | None = None
        self._at: float | None = None
        self._per_job: dict[JobKey, tuple[int, frozenset[str]]] = {}

    async def names(self) -> frozenset[str] | None:
        """The set as of at most ``ttl`` ago; None when no listing ever succeeded."""
        async with self._lock:
            if self._at is not None and self.clock.monotonic() - self._at < self.ttl:
                return self._names
            try:
                self._names = await self._refresh()
            except NomadError as exc:
                log.warning("cannot list meshed jobs; allow names not checked", error=str(exc))
            self._at = self.clock.monotonic()
            return self._names

    async def _refresh(self) -> frozenset[str]:
        listing = await self.lister.list_jobs("*", meta=True)
        seen: dict[JobKey, tuple[int, frozenset[str]]] = {}
        for stub in listing.stubs:
            if stub.get("ParentID"):
                continue  # a child's names are its parent's
            key = JobKey.of(str(stub.get("Namespace") or "default"), str(stub.get("ID") or ""))
            index = stub.get("ModifyIndex")
            kept = self._per_job.get(key)
            if isinstance(index, int) and index > 0 and kept is not None and kept[0] == index:
                seen[key] = kept
                continue
            job = await self.jobs.get_job(key.job_id, key.namespace)
            if job is None:
                continue
            seen[key] = (index if isinstance(index, int) else 0, mesh_names(job, self.config))
        self._per_job = seen
        return frozenset().union(*(names for _, names in seen.values()))
