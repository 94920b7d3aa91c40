"""Our adapter's cluster-wide LISTs against the Nomad twin: every page of allocations and
deployments, the stub fields the job cache reads, and the index a fill compares against."""

from __future__ import annotations

import pytest

from controller.nomad.cache_objects import ALLOC_FIELDS
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from tests.support.nomad_fixtures import job_spec
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


async def test_allocations_and_deployments_are_listed_across_pages(nomad: NomadClient) -> None:
    jobs = NomadJobs(nomad, objects_per_page=2)
    for name in ("a", "b", "c"):
        spec = job_spec(name)
        spec["TaskGroups"][0]["Count"] = 2
        await jobs.register_job(spec, enforce_index=None)

    async def placed() -> bool:
        return len((await jobs.list_allocations()).stubs) == 6

    await eventually(placed, what="six allocations placed")
    listed = await jobs.list_allocations()
    assert len({a["ID"] for a in listed.stubs}) == 6  # no page read twice, none skipped
    assert listed.index > 0
    for stub in listed.stubs:
        # every field the cache keeps is in the stub (AllocatedResources is not asked for)
        assert set(ALLOC_FIELDS) <= set(stub), set(ALLOC_FIELDS) - set(stub)
        assert "TaskStates" in stub and "AllocatedResources" not in stub
    deployments = await jobs.list_deployments()
    assert {d["JobID"] for d in deployments.stubs} == {"a", "b", "c"}
    assert all("TaskGroups" in d and "JobSpecModifyIndex" in d for d in deployments.stubs)
