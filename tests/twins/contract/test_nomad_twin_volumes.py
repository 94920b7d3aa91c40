"""Contract tests: host volumes and CSI volumes on the Nomad twin's nodes and in placement.

Pinned against nomad v1.10.5: ``nomad/structs/volumes.go`` ``ClientHostVolumeConfig`` and
``structs.go`` ``NodeListStub.HostVolumes``; ``scheduler/feasible.go``
``HostVolumeChecker.hasVolumes`` / ``CSIVolumeChecker.isFeasible`` and their
``FilterConstraint*`` texts; ``scheduler/generic_sched.go`` ``createBlockedEval`` /
``setStatus`` (``queued-allocs``, ``blocked``, ``created to place remaining allocations``,
``FailedTGAllocs``, ``QueuedAllocations``); ``structs.go`` ``AllocMetric.FilterNode``;
``state_store.go`` ``nestedUpsertEval`` (summary ``Queued``); ``nomad/csi_endpoint.go``
``CSIVolume.Register`` / ``Get`` / ``List`` and ``command/agent/csi_endpoint.go``,
``volumes_endpoint.go`` for the HTTP layer.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devstack.nomad import HostVolumeConfig, NodeConfig, NomadTwin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)

CERTS_RO = HostVolumeConfig(name="certs", path="/srv/certs", read_only=True)
DATA_RW = HostVolumeConfig(name="data", path="/srv/data")


def job(job_id: str, volumes: dict[str, Any], count: int = 2) -> dict[str, Any]:
    return {
        "Job": {
            "ID": job_id,
            "Type": "service",
            "TaskGroups": [
                {
                    "Name": "g",
                    "Count": count,
                    "Volumes": volumes,
                    "Tasks": [{"Name": "t", "Driver": "docker", "Config": {}}],
                }
            ],
        }
    }


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def settled_evals(http: aiohttp.ClientSession, twin: NomadTwin, job_id: str) -> Any:
    async def done() -> Any:
        evals = await get(http, f"{twin.url}/v1/job/{job_id}/evaluations")
        return evals if all(e["Status"] != "pending" for e in evals) else None

    return await eventually(done)


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(
        nodes=3,
        node_configs=[
            NodeConfig(host_volumes=(CERTS_RO, DATA_RW), csi_node_plugins=("ebs",)),
            NodeConfig(host_volumes=(CERTS_RO,)),
        ],
    )


async def test_nodes_show_host_volumes_and_csi_plugins(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    stubs = await get(http, f"{twin.url}/v1/nodes")
    by_name = {n["Name"]: n for n in stubs}
    assert by_name["node-1"]["HostVolumes"] == {
        "certs": {"Name": "certs", "Path": "/srv/certs", "ReadOnly": True, "ID": ""},
        "data": {"Name": "data", "Path": "/srv/data", "ReadOnly": False, "ID": ""},
    }
    assert by_name["node-3"]["HostVolumes"] is None
    node = await get(http, f"{twin.url}/v1/node/{by_name['node-1']['ID']}")
    assert node["HostVolumes"] == by_name["node-1"]["HostVolumes"]
    plugin = node["CSINodePlugins"]["ebs"]
    assert plugin["Healthy"] is True and plugin["PluginID"] == "ebs"
    other = await get(http, f"{twin.url}/v1/node/{by_name['node-3']['ID']}")
    assert other["CSINodePlugins"] is None and other["HostVolumes"] is None
    async with http.get(f"{twin.url}/v1/node/nope") as resp:
        assert (resp.status, await resp.text()) == (404, "node not found")


async def test_host_volume_placement_honours_read_only(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    ids = {n["Name"]: n["ID"] for n in await get(http, f"{twin.url}/v1/nodes")}
    ro = {"c": {"Type": "host", "Source": "certs", "ReadOnly": True}}
    rw_on_ro = {"c": {"Type": "host", "Source": "certs", "ReadOnly": False}}
    await http.post(f"{twin.url}/v1/jobs", json=job("ro", ro, count=4))
    await http.post(f"{twin.url}/v1/jobs", json=job("rw", rw_on_ro, count=1))

    async def placed() -> Any:
        allocs = await get(http, f"{twin.url}/v1/job/ro/allocations")
        return allocs if len(allocs) == 4 else None

    allocs = await eventually(placed)
    assert {a["NodeID"] for a in allocs} == {ids["node-1"], ids["node-2"]}
    # A read-write request for a volume every node configured read_only fits nowhere.
    evals = await settled_evals(http, twin, "rw")
    assert await get(http, f"{twin.url}/v1/job/rw/allocations") == []
    done = next(e for e in evals if e["Status"] == "complete")
    metric = done["FailedTGAllocs"]["g"]
    assert metric["ConstraintFiltered"] == {"missing compatible host volumes": 3}


async def test_missing_host_volume_fails_placement_as_nomad_reports_it(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    vols = {"x": {"Type": "host", "Source": "nowhere", "ReadOnly": True}}
    async with http.post(f"{twin.url}/v1/jobs", json=job("lost", vols, count=3)) as resp:
        reg = await resp.json()
    evals = await settled_evals(http, twin, "lost")
    assert len(evals) == 2
    done = next(e for e in evals if e["ID"] == reg["EvalID"])
    blocked = next(e for e in evals if e["ID"] != reg["EvalID"])
    metric = done["FailedTGAllocs"]["g"]
    assert metric == {
        "NodesEvaluated": 3,
        "NodesFiltered": 3,
        "NodesInPool": 3,
        "NodePool": "default",
        "NodesAvailable": {"dc1": 3},
        "ClassFiltered": None,
        "ConstraintFiltered": {"missing compatible host volumes": 3},
        "NodesExhausted": 0,
        "ClassExhausted": None,
        "DimensionExhausted": None,
        "QuotaExhausted": None,
        "ResourcesExhausted": None,
        "Scores": None,
        "ScoreMetaData": None,
        "AllocationTime": 0,
        "CoalescedFailures": 2,
    }
    assert done["Status"] == "complete"
    assert done["BlockedEval"] == blocked["ID"]
    assert done["QueuedAllocations"] == {"g": 3}
    assert blocked["Status"] == "blocked"
    assert blocked["TriggeredBy"] == "queued-allocs"
    assert blocked["StatusDescription"] == "created to place remaining allocations"
    assert blocked["PreviousEval"] == done["ID"]
    assert blocked["FailedTGAllocs"] == done["FailedTGAllocs"]
    summary = await get(http, f"{twin.url}/v1/job/lost/summary")
    assert summary["Summary"]["g"]["Queued"] == 3
    assert summary["Summary"]["g"]["Starting"] == 0
    assert (await get(http, f"{twin.url}/v1/job/lost"))["Status"] == "pending"
    assert await get(http, f"{twin.url}/v1/job/lost/allocations") == []


async def test_csi_volume_register_read_list(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    body = {
        "Volumes": [
            {
                "ID": "db",
                "Name": "db",
                "PluginID": "ebs",
                "RequestedCapabilities": [
                    {"AccessMode": "single-node-writer", "AttachmentMode": "file-system"}
                ],
            }
        ]
    }
    async with http.put(f"{twin.url}/v1/volume/csi/db", json=body) as resp:
        assert resp.status == 200, await resp.text()
        out = await resp.json()
    assert [v["ID"] for v in out["Volumes"]] == ["db"]
    vol = await get(http, f"{twin.url}/v1/volume/csi/db")
    assert (vol["Namespace"], vol["PluginID"], vol["Schedulable"]) == ("default", "ebs", True)
    assert (vol["NodesHealthy"], vol["ReadAllocs"], vol["WriteAllocs"]) == (1, {}, {})
    stubs = await get(http, f"{twin.url}/v1/volumes?type=csi")
    assert [(s["ID"], s["CurrentWriters"], s["Schedulable"]) for s in stubs] == [("db", 0, True)]
    assert await get(http, f"{twin.url}/v1/volumes") == []
    async with http.get(f"{twin.url}/v1/volume/csi/none") as resp:
        assert (resp.status, await resp.text()) == (404, "volume not found")
    bad = {"Volumes": [{"ID": "v", "PluginID": "nope", "RequestedCapabilities": [{}]}]}
    async with http.put(f"{twin.url}/v1/volume/csi/v", json=bad) as resp:
        assert (resp.status, await resp.text()) == (
            500,
            "no CSI plugin named: nope could be found",
        )
    async with http.put(f"{twin.url}/v1/volume/csi/v", json={"Volumes": [{"ID": "v"}]}) as resp:
        assert (resp.status, await resp.text()) == (
            500,
            "validation: missing plugin id, must include at least one capability block",
        )


async def test_csi_placement_needs_volume_and_plugin(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    ids = {n["Name"]: n["ID"] for n in await get(http, f"{twin.url}/v1/nodes")}
    vols = {"d": {"Type": "csi", "Source": "db", "AccessMode": "single-node-writer"}}
    await http.post(f"{twin.url}/v1/jobs", json=job("early", vols, count=1))
    evals = await settled_evals(http, twin, "early")
    done = next(e for e in evals if e["Status"] == "complete")
    assert done["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {"missing CSI Volume db": 3}

    body = {
        "Volumes": [
            {
                "ID": "db",
                "PluginID": "ebs",
                "RequestedCapabilities": [
                    {"AccessMode": "single-node-writer", "AttachmentMode": "file-system"}
                ],
            }
        ]
    }
    async with http.put(f"{twin.url}/v1/volume/csi/db", json=body) as resp:
        assert resp.status == 200
    await http.post(f"{twin.url}/v1/jobs", json=job("app", vols, count=1))

    async def placed() -> Any:
        allocs = await get(http, f"{twin.url}/v1/job/app/allocations")
        return allocs if allocs else None

    [alloc] = await eventually(placed)
    assert alloc["NodeID"] == ids["node-1"]  # the only node with the ebs plugin
    vol = await get(http, f"{twin.url}/v1/volume/csi/db")
    assert list(vol["WriteAllocs"]) == [alloc["ID"]]

    # Another job's writer holds the single-node-writer claim.
    await http.post(f"{twin.url}/v1/jobs", json=job("second", vols, count=1))
    evals = await settled_evals(http, twin, "second")
    done = next(e for e in evals if e["Status"] == "complete")
    n1, n2, n3 = ids["node-1"], ids["node-2"], ids["node-3"]
    assert done["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {
        "CSI volume db has exhausted its available writer claims": 1,
        f"CSI plugin ebs is missing from client {n2}": 1,
        f"CSI plugin ebs is missing from client {n3}": 1,
    }
    assert n1 not in str(done["FailedTGAllocs"])
