"""Which jobs a rotation must re-issue: every meshed, running service job it can see.

Batch and system jobs are left out (a batch job's leaf dies with it; a system job is rolled by
its own update block and is found again on the next rotation), and so are stopped jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from reconcilers.injection import jobview
from reconcilers.instances.matching import fronted_ports
from reconcilers.ports import JobLister, JobStore

ROTATED_TYPES = (None, "service")


async def meshed_service_jobs(
    lister: JobLister, jobs: JobStore, namespaces: Sequence[str], config: MeshConfig
) -> list[JobKey]:
    """Sorted keys of the running service jobs that front at least one port."""
    out: set[JobKey] = set()
    for namespace in namespaces:
        listed = await lister.list_jobs(namespace, meta=True)
        for stub in listed.stubs:
            key = JobKey.of(str(stub.get("Namespace") or "default"), str(stub.get("ID")))
            job = await jobs.get_job(key.job_id, key.namespace)
            if job is None or jobview.is_stopped(job) or job.get("Type") not in ROTATED_TYPES:
                continue
            if fronted_ports(job, config):
                out.add(key)
    return sorted(out)
