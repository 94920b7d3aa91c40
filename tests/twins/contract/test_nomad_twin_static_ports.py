"""Contract tests: a static port is reserved on its node; the scheduler never doubles it.

Pinned against hashicorp/nomad (main, 2026-08): ``nomad/structs/network.go``
``NetworkIndex.AddAllocs`` / ``AddReservedPorts`` (ports of the proposed, non-terminal
allocations per host IP) and ``AssignPorts`` (``reserved port collision <label>=<value>``);
``scheduler/feasible/rank.go`` ``BinPackIterator.Next`` (``ExhaustedNode(node, "network: "
+ err)``); ``scheduler/feasible/context.go`` ``EvalContext.ProposedAllocs`` (the plan's stops
are removed first); ``scheduler/generic_sched.go`` ``computePlacements`` (a destructive update
stops its previous allocation before selecting, ``StopPreviousAlloc``; a failed placement
records ``FailedTGAllocs`` and leaves a blocked eval); ``nomad/structs/alloc.go``
``AllocMetric.ExhaustedNode`` / ``ExhaustResources``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)

LABEL = "mesh_tls_upstream_9001"
COLLISION = f"network: reserved port collision {LABEL}=9001"


def job(job_id: str, count: int, command: str = "x") -> dict[str, Any]:
    """A group reserving static port 9001, as an injected host-mode upstream listener does."""
    return {
        "Job": {
            "ID": job_id,
            "Type": "service",
            "TaskGroups": [
                {
                    "Name": "g",
                    "Count": count,
                    "Update": {"MaxParallel": 2, "MinHealthyTime": 0},
                    "Networks": [
                        {
                            "Mode": "host",
                            "ReservedPorts": [{"Label": LABEL, "Value": 9001}],
                            "DynamicPorts": [{"Label": "http"}],
                        }
                    ],
                    "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"command": command}}],
                }
            ],
        }
    }


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def register(http: aiohttp.ClientSession, twin: NomadTwin, body: dict[str, Any]) -> str:
    async with http.post(f"{twin.url}/v1/jobs", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["EvalID"])


async def settled(http: aiohttp.ClientSession, twin: NomadTwin, eval_id: str) -> Any:
    async def done() -> Any:
        ev = await get(http, f"{twin.url}/v1/evaluation/{eval_id}")
        return ev if ev["Status"] != "pending" else None

    return await eventually(done)


async def live(http: aiohttp.ClientSession, twin: NomadTwin, job_id: str) -> list[Any]:
    allocs = await get(http, f"{twin.url}/v1/job/{job_id}/allocations")
    return [a for a in allocs if a["DesiredStatus"] == "run"]


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=2)


async def test_a_third_allocation_reserving_one_static_port_on_two_nodes_is_not_placed(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    done = await settled(http, twin, await register(http, twin, job("caller", 3)))
    allocs = await live(http, twin, "caller")
    assert len(allocs) == 2 and len({a["NodeID"] for a in allocs}) == 2
    metric = done["FailedTGAllocs"]["g"]
    assert {k: metric[k] for k in ("NodesEvaluated", "NodesExhausted", "CoalescedFailures")} == {
        "NodesEvaluated": 2,
        "NodesExhausted": 2,
        "CoalescedFailures": 0,
    }
    assert metric["DimensionExhausted"] == {COLLISION: 2}
    assert metric["NodesFiltered"] == 0 and metric["ConstraintFiltered"] is None
    assert set(metric["ResourcesExhausted"]) == {"t"}
    assert metric["ResourcesExhausted"]["t"]["MemoryMB"] == 0
    assert done["QueuedAllocations"] == {"g": 1}
    blocked = await get(http, f"{twin.url}/v1/evaluation/{done['BlockedEval']}")
    assert (blocked["Status"], blocked["TriggeredBy"]) == ("blocked", "queued-allocs")
    summary = await get(http, f"{twin.url}/v1/job/caller/summary")
    assert summary["Summary"]["g"]["Queued"] == 1


async def test_another_job_cannot_take_a_static_port_every_node_has_given_away(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await settled(http, twin, await register(http, twin, job("first", 2)))
    done = await settled(http, twin, await register(http, twin, job("second", 1)))
    assert await live(http, twin, "second") == []
    assert done["FailedTGAllocs"]["g"]["DimensionExhausted"] == {COLLISION: 2}
    ports = [
        p["Value"]
        for a in await live(http, twin, "first")
        for p in (await get(http, f"{twin.url}/v1/allocation/{a['ID']}"))["AllocatedResources"][
            "Shared"
        ]["Ports"]
        if p["Label"] == LABEL
    ]
    assert ports == [9001, 9001]  # one on each node, as asked


async def test_a_destructive_update_frees_the_old_allocations_ports_in_the_same_eval(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await settled(http, twin, await register(http, twin, job("caller", 2)))
    before = {a["ID"]: a["NodeID"] for a in await live(http, twin, "caller")}
    done = await settled(http, twin, await register(http, twin, job("caller", 2, "y")))
    assert done.get("FailedTGAllocs") is None
    after = await live(http, twin, "caller")
    assert len(after) == 2 and not {a["ID"] for a in after} & set(before)
    # each replacement took the port its previous allocation gave up, on that node
    assert sorted(a["NodeID"] for a in after) == sorted(before.values())
