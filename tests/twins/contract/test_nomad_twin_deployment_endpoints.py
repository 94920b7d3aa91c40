"""Pause/resume, manual allocation health and unblock, as Nomad 1.10 answers them.

Pinned against ``command/agent/deployment_endpoint.go`` (``deploymentPause``,
``deploymentSetAllocHealth``, ``deploymentUnblock``: 405/400 texts),
``nomad/deployment_endpoint.go`` (``Pause``, ``SetAllocHealth``, ``Unblock``: the
terminal-deployment errors of ``structs/errors.go``), ``deploymentwatcher``
(``PauseDeployment``, ``SetAllocHealth``;
``multiregion_ce.go`` ``UnblockDeployment`` does nothing in OSS) and
``state_store.go`` ``UpdateDeploymentAllocHealth``. Raw HTTP.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devstack.nomad.server import NomadTwin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

MS = 1_000_000


def manual_job(version: str = "1", auto_revert: bool = False) -> dict[str, Any]:
    return {
        "Job": {
            "ID": "web",
            "Name": "web",
            "Type": "service",
            "Datacenters": ["dc1"],
            "Meta": {"v": version},
            "TaskGroups": [
                {
                    "Name": "app",
                    "Count": 1,
                    "Update": {
                        "MaxParallel": 1,
                        "HealthCheck": "manual",
                        "MinHealthyTime": 10 * MS,
                        "HealthyDeadline": 60_000 * MS,
                        "ProgressDeadline": 120_000 * MS,
                        "AutoRevert": auto_revert,
                    },
                    "Tasks": [{"Name": "app", "Driver": "docker", "Config": {}}],
                }
            ],
        }
    }


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


async def call(
    http: aiohttp.ClientSession, twin: NomadTwin, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, f"{twin.url}{path}", json=body) as r:
        data = await (r.json() if "json" in r.headers.get("Content-Type", "") else r.text())
        return r.status, data


async def running_deployment(
    http: aiohttp.ClientSession, twin: NomadTwin, version: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployment of ``version`` once its allocation runs (manual health: never set)."""

    async def ready() -> tuple[dict[str, Any], dict[str, Any]] | None:
        _, deps = await call(http, twin, "GET", "/v1/job/web/deployments")
        _, allocs = await call(http, twin, "GET", "/v1/job/web/allocations")
        dep = next((d for d in deps if d["JobVersion"] == version), None)
        live = [a for a in allocs if a["ClientStatus"] == "running" and a["JobVersion"] == version]
        return (dep, live[0]) if dep and live else None

    return await eventually(ready, within=5)


async def test_pause_and_resume(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    await call(http, twin, "PUT", "/v1/jobs", manual_job())
    dep, _ = await running_deployment(http, twin)
    path = f"/v1/deployment/pause/{dep['ID']}"

    status, out = await call(http, twin, "POST", path, {"DeploymentID": dep["ID"], "Pause": True})
    assert status == 200
    assert out["EvalID"] == "" and out["EvalCreateIndex"] == 0
    assert out["DeploymentModifyIndex"] == out["Index"] > 0
    _, paused = await call(http, twin, "GET", f"/v1/deployment/{dep['ID']}")
    assert (paused["Status"], paused["StatusDescription"]) == ("paused", "Deployment is paused")

    status, out = await call(http, twin, "PUT", path, {"DeploymentID": dep["ID"], "Pause": False})
    assert status == 200
    _, ev = await call(http, twin, "GET", f"/v1/evaluation/{out['EvalID']}")
    assert (ev["TriggeredBy"], ev["DeploymentID"]) == ("deployment-watcher", dep["ID"])
    assert out["EvalCreateIndex"] == out["Index"]
    _, resumed = await call(http, twin, "GET", f"/v1/deployment/{dep['ID']}")
    assert (resumed["Status"], resumed["StatusDescription"]) == ("running", "Deployment is running")

    # The HTTP layer's checks.
    assert await call(http, twin, "GET", path) == (405, "Invalid method")
    assert await call(http, twin, "POST", path, {"Pause": True}) == (
        400,
        "DeploymentID must be specified",
    )
    assert await call(http, twin, "POST", path, {"DeploymentID": "x", "Pause": True}) == (
        400,
        "Deployment ID does not match",
    )


async def test_manual_health_healthy_completes_the_deployment(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await call(http, twin, "PUT", "/v1/jobs", manual_job())
    dep, alloc = await running_deployment(http, twin)
    path = f"/v1/deployment/allocation-health/{dep['ID']}"
    assert await call(http, twin, "POST", path, {"DeploymentID": dep["ID"]}) == (
        500,
        "must specify at least one healthy/unhealthy allocation ID",
    )
    assert await call(
        http, twin, "POST", path, {"DeploymentID": dep["ID"], "HealthyAllocationIDs": ["nope"]}
    ) == (500, 'unknown alloc "nope"')

    status, out = await call(
        http, twin, "POST", path, {"DeploymentID": dep["ID"], "HealthyAllocationIDs": [alloc["ID"]]}
    )
    assert status == 200 and out["EvalID"] and out["RevertedJobVersion"] is None
    _, full = await call(http, twin, "GET", f"/v1/allocation/{alloc['ID']}")
    assert full["DeploymentStatus"]["Healthy"] is True
    assert full["DeploymentStatus"]["ModifyIndex"] == out["Index"]

    async def done() -> dict[str, Any] | None:
        _, d = await call(http, twin, "GET", f"/v1/deployment/{dep['ID']}")
        return d if d["Status"] == "successful" else None

    final = await eventually(done, within=5)
    assert final["StatusDescription"] == "Deployment completed successfully"
    assert final["TaskGroups"]["app"]["HealthyAllocs"] == 1
    _, job = await call(http, twin, "GET", "/v1/job/web")
    assert job["Stable"] is True

    # Every write on a terminal deployment is refused with structs/errors.go's text.
    did = dep["ID"]
    body = {"DeploymentID": did, "HealthyAllocationIDs": [alloc["ID"]]}
    assert await call(http, twin, "POST", path, body) == (
        500,
        "can't set health of allocations for a terminal deployment",
    )
    pause = f"/v1/deployment/pause/{did}"
    assert await call(http, twin, "POST", pause, {"DeploymentID": did, "Pause": True}) == (
        500,
        "can't pause terminal deployment",
    )
    assert await call(http, twin, "POST", pause, {"DeploymentID": did, "Pause": False}) == (
        500,
        "can't resume terminal deployment",
    )
    assert await call(
        http, twin, "POST", f"/v1/deployment/unblock/{did}", {"DeploymentID": did}
    ) == (500, "can't unblock terminal deployment")


async def test_manual_health_unhealthy_fails_and_reverts(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await call(http, twin, "PUT", "/v1/jobs", manual_job("1", auto_revert=True))
    dep0, alloc0 = await running_deployment(http, twin)
    path0 = f"/v1/deployment/allocation-health/{dep0['ID']}"
    body0 = {"DeploymentID": dep0["ID"], "HealthyAllocationIDs": [alloc0["ID"]]}
    await call(http, twin, "POST", path0, body0)
    await call(http, twin, "PUT", "/v1/jobs", manual_job("2", auto_revert=True))
    dep1, alloc1 = await running_deployment(http, twin, version=1)

    status, out = await call(
        http,
        twin,
        "POST",
        f"/v1/deployment/allocation-health/{dep1['ID']}",
        {"DeploymentID": dep1["ID"], "UnhealthyAllocationIDs": [alloc1["ID"]]},
    )
    assert status == 200
    assert out["RevertedJobVersion"] == 0
    _, failed = await call(http, twin, "GET", f"/v1/deployment/{dep1['ID']}")
    assert failed["Status"] == "failed"
    assert failed["StatusDescription"] == (
        "Failed due to unhealthy allocations - rolling back to job version 0"
    )
    _, full = await call(http, twin, "GET", f"/v1/allocation/{alloc1['ID']}")
    assert full["DeploymentStatus"]["Healthy"] is False
    _, job = await call(http, twin, "GET", "/v1/job/web")
    assert (job["Version"], job["Meta"]) == (2, {"v": "1"})


async def test_unblock_is_a_no_op_outside_multiregion(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await call(http, twin, "PUT", "/v1/jobs", manual_job())
    dep, _ = await running_deployment(http, twin)
    status, out = await call(
        http, twin, "POST", f"/v1/deployment/unblock/{dep['ID']}", {"DeploymentID": dep["ID"]}
    )
    assert (status, out) == (
        200,
        {
            "EvalID": "",
            "EvalCreateIndex": 0,
            "DeploymentModifyIndex": 0,
            "RevertedJobVersion": None,
            "Index": 0,
        },
    )
    _, same = await call(http, twin, "GET", f"/v1/deployment/{dep['ID']}")
    assert same["Status"] == "running"
