"""Contract tests: placement, allocations, deployments, lifecycle, hooks and drivers."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlparse

import aiohttp
import nomad
import pytest

from devstack.nomad import NomadTwin, TaskContext, start_nomad_twin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def job(
    job_id: str = "web", count: int = 3, jtype: str = "service", **task_extra: Any
) -> dict[str, Any]:
    task = {"Name": "srv", "Driver": "raw_exec", "Config": {"command": "x"}, **task_extra}
    return {
        "Job": {
            "ID": job_id,
            "Type": jtype,
            "TaskGroups": [
                {
                    "Name": "app",
                    "Count": count,
                    "Update": {"MaxParallel": 1, "MinHealthyTime": 0},
                    "Networks": [{"DynamicPorts": [{"Label": "http", "To": 8080}]}],
                    "Tasks": [task],
                }
            ],
        }
    }


class Hooks:
    def __init__(self) -> None:
        self.running: list[dict[str, Any]] = []
        self.stopped: list[dict[str, Any]] = []

    async def on_alloc_running(self, alloc: dict[str, Any]) -> None:
        self.running.append(alloc)

    async def on_alloc_stopping(self, alloc: dict[str, Any], task: str | None) -> None:
        pass  # its jobs have no services

    async def on_alloc_stopped(self, alloc: dict[str, Any]) -> None:
        self.stopped.append(alloc)


class RecordingDriver:
    """Records the order of driver calls; a real process driver would start things here."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.calls.append(("start", task["Name"], alloc["ID"]))
        assert ctx.node_address == ctx.env["NOMAD_IP_http"]
        life = task.get("Lifecycle") or {}
        if life.get("Hook") == "prestart" and not life.get("Sidecar"):
            asyncio.get_running_loop().call_later(0.05, ctx.task_exited, 0)

    async def stop(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.calls.append(("stop", task["Name"], alloc["ID"]))

    async def signal(
        self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext, signal: str
    ) -> None:
        self.calls.append((f"signal:{signal}", task["Name"], alloc["ID"]))

    async def restart(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.calls.append(("restart", task["Name"], alloc["ID"]))


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(heartbeat_interval=0.2)


async def allocs_of(http: aiohttp.ClientSession, twin: NomadTwin, jid: str = "web") -> list[Any]:
    return list(await (await http.get(f"{twin.url}/v1/job/{jid}/allocations")).json())


async def test_service_allocs_spread_over_nodes_with_own_addresses(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await http.post(f"{twin.url}/v1/jobs", json=job())

    async def running() -> bool:
        return [a["ClientStatus"] for a in await allocs_of(http, twin)] == ["running"] * 3

    await eventually(running)
    stubs = await allocs_of(http, twin)
    assert sorted(a["NodeName"] for a in stubs) == ["node-1", "node-2", "node-3"]
    assert sorted(a["Name"] for a in stubs) == ["web.app[0]", "web.app[1]", "web.app[2]"]
    assert "AllocatedResources" not in stubs[0]
    full = await (await http.get(f"{twin.url}/v1/allocation/{stubs[0]['ID']}")).json()
    node = next(n for n in twin.nodes if n.id == full["NodeID"])
    (port,) = full["AllocatedResources"]["Shared"]["Ports"]
    assert port["HostIP"] == node.address == f"127.0.0.{10 + node.index}"
    assert 20000 <= port["Value"] <= 32000 and port["To"] == 8080
    assert full["Job"]["ID"] == "web"
    assert "DesiredTransition" not in full and "PreviousAllocation" not in full  # omitempty
    states = full["TaskStates"]["srv"]
    assert states["State"] == "running" and states["FinishedAt"] is None
    assert [e["Type"] for e in states["Events"]] == ["Received", "Task Setup", "Started"]
    job_read = await (await http.get(f"{twin.url}/v1/job/web")).json()
    assert job_read["Status"] == "running"

    async def stable() -> bool:
        dep = await (await http.get(f"{twin.url}/v1/job/web/deployment")).json()
        return bool(dep["Status"] == "successful")

    await eventually(stable)
    assert (await (await http.get(f"{twin.url}/v1/job/web")).json())["Stable"] is True
    listed = await (await http.get(f"{twin.url}/v1/allocations?resources=true")).json()
    assert all(a["AllocatedResources"]["Shared"]["Ports"] for a in listed)


async def test_system_job_one_alloc_per_node(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    await http.post(f"{twin.url}/v1/jobs", json=job("sys", count=1, jtype="system"))

    async def placed() -> bool:
        return len(await allocs_of(http, twin, "sys")) == 3

    await eventually(placed)
    assert len({a["NodeID"] for a in await allocs_of(http, twin, "sys")}) == 3


async def test_system_rolling_update_replaces_max_parallel_per_stagger_in_place(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    """Nomad 1.10 scheduler_system.go: with a job-level update (stagger and max_parallel set)
    an eval replaces max_parallel allocations on their own nodes and creates a rolling-update
    eval that waits the stagger; the plan still annotates every destructive update."""
    body = job("sys", count=1, jtype="system")
    body["Job"]["Update"] = {"MaxParallel": 1, "Stagger": 1_000_000_000}
    await http.post(f"{twin.url}/v1/jobs", json=body)

    async def three_running() -> list[Any] | None:
        allocs = [a for a in await allocs_of(http, twin, "sys") if a["DesiredStatus"] == "run"]
        return allocs if sum(a["ClientStatus"] == "running" for a in allocs) == 3 else None

    first = await eventually(three_running)
    nodes = {a["ID"]: a["NodeID"] for a in first}
    body["Job"]["Meta"] = {"version": "2"}
    plan = await (await http.post(f"{twin.url}/v1/job/sys/plan", json=body)).json()
    assert plan["Annotations"]["DesiredTGUpdates"]["app"]["DestructiveUpdate"] == 3
    registered = await (await http.post(f"{twin.url}/v1/jobs", json=body)).json()

    async def first_eval_done() -> dict[str, Any] | None:
        ev = await (await http.get(f"{twin.url}/v1/evaluation/{registered['EvalID']}")).json()
        return dict(ev) if ev["Status"] == "complete" else None

    ev = await eventually(first_eval_done)
    allocs = await allocs_of(http, twin, "sys")
    live = [a for a in allocs if a["DesiredStatus"] == "run"]
    assert sorted(a["JobVersion"] for a in live) == [0, 0, 1]  # one per eval
    follow = await (await http.get(f"{twin.url}/v1/evaluation/{ev['NextEval']}")).json()
    assert (follow["TriggeredBy"], follow["Wait"]) == ("rolling-update", 1_000_000_000)
    assert follow["PreviousEval"] == ev["ID"] and follow["Status"] == "pending"

    async def all_new() -> list[Any] | None:
        now = await three_running()
        return now if now and all(a["JobVersion"] == 1 for a in now) else None

    done = await eventually(all_new, within=10)
    replaced = {a["ID"]: a for a in await allocs_of(http, twin, "sys") if a["ID"] in nodes}
    for old_id, old in replaced.items():  # each replacement runs where the old one ran
        new = next(a for a in done if a["ID"] == old["NextAllocation"])
        assert new["NodeID"] == nodes[old_id]


async def test_destructive_update_honours_max_parallel_and_stop_completes(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await http.post(f"{twin.url}/v1/jobs", json=job(count=2))

    async def all_healthy() -> bool:
        allocs = await allocs_of(http, twin)
        return len(allocs) == 2 and all(
            (a["DeploymentStatus"] or {}).get("Healthy") for a in allocs
        )

    await eventually(all_healthy)
    old_ids = {a["ID"] for a in await allocs_of(http, twin)}
    async with http.get(f"{twin.url}/v1/event/stream?topic=Allocation:web") as stream:
        await http.post(f"{twin.url}/v1/jobs", json=job(count=2, Env={"V": "2"}))

        async def replaced() -> bool:
            allocs = await allocs_of(http, twin)
            new = [a for a in allocs if a["ID"] not in old_ids and a["ClientStatus"] == "running"]
            return len(new) == 2 and all(
                a["DesiredStatus"] == "stop" for a in allocs if a["ID"] in old_ids
            )

        await eventually(replaced)
        placements: list[int] = []
        async with asyncio.timeout(5):
            while len(placements) < 2:
                frame = json.loads(await stream.content.readline())
                for ev in frame.get("Events", []):
                    alloc = ev["Payload"]["Allocation"]
                    if ev["Type"] == "PlanResult" and alloc["ID"] not in old_ids:
                        placements.append(frame["Index"])
        assert placements[0] != placements[1]  # MaxParallel 1: one replacement per plan
    allocs = await allocs_of(http, twin)
    new = [a for a in allocs if a["ID"] not in old_ids]
    assert {a["JobVersion"] for a in new} == {1}
    full = await (await http.get(f"{twin.url}/v1/allocation/{new[0]['ID']}")).json()
    assert full["PreviousAllocation"] in old_ids
    await http.delete(f"{twin.url}/v1/job/web")

    async def dead() -> bool:
        body = await (await http.get(f"{twin.url}/v1/job/web")).json()
        return bool(body["Status"] == "dead")

    await eventually(dead)  # desired-stop allocs are terminal, so the job is dead at once

    async def complete() -> bool:
        return {a["ClientStatus"] for a in await allocs_of(http, twin)} == {"complete"}

    await eventually(complete)


async def test_hooks_driver_lifecycle_signal_restart_and_stop(http: aiohttp.ClientSession) -> None:
    hooks = Hooks()
    driver = RecordingDriver()
    twin = await start_nomad_twin(
        nodes=2, alloc_hooks=hooks, drivers={"raw_exec": driver}, heartbeat_interval=0.2
    )
    try:
        body = job(count=1)
        group = body["Job"]["TaskGroups"][0]
        group["Tasks"] = [
            {"Name": "main", "Driver": "raw_exec"},
            {
                "Name": "proxy",
                "Driver": "raw_exec",
                "Lifecycle": {"Hook": "prestart", "Sidecar": True},
            },
            {"Name": "init", "Driver": "raw_exec", "Lifecycle": {"Hook": "prestart"}},
        ]
        await http.post(f"{twin.url}/v1/jobs", json=body)

        async def hooked() -> bool:
            # Nomad's client status is running as soon as any task runs (the sidecar), so
            # also wait for the main task's start.
            return len(hooks.running) == 1 and ("start", "main") in [c[:2] for c in driver.calls]

        await eventually(hooked)
        alloc = hooks.running[0]
        assert alloc["Job"]["ID"] == "web"
        assert alloc["AllocatedResources"]["Shared"]["Ports"][0]["HostIP"].startswith("127.0.0.1")
        starts = [name for op, name, _ in driver.calls if op == "start"]
        assert starts.index("main") > starts.index("proxy")
        assert starts.index("main") > starts.index("init")
        aid = alloc["ID"]
        url = urlparse(twin.url)
        n = nomad.Nomad(host=url.hostname, port=url.port, timeout=5)
        sig = await http.post(
            f"{twin.url}/v1/client/allocation/{aid}/signal",
            json={"Signal": "SIGHUP", "Task": "proxy"},
        )
        assert (sig.status, await sig.json()) == (200, {})
        restart = await http.post(
            f"{twin.url}/v1/client/allocation/{aid}/restart", json={"TaskName": "main"}
        )
        assert restart.status == 200
        assert ("signal:SIGHUP", "proxy", aid) in driver.calls
        assert ("restart", "main", aid) in driver.calls

        async def recorded() -> bool:
            full = await asyncio.to_thread(n.allocation.get_allocation, aid)
            types = {t: [e["Type"] for e in s["Events"]] for t, s in full["TaskStates"].items()}
            return "Signaling" in types["proxy"] and "Restart Signaled" in types["main"]

        await eventually(recorded)
        full = await asyncio.to_thread(n.allocation.get_allocation, aid)
        assert full["TaskStates"]["main"]["Restarts"] == 1
        assert full["TaskStates"]["init"]["State"] == "dead"
        assert full["TaskStates"]["init"]["Failed"] is False
        stop = await asyncio.to_thread(n.allocation.stop_allocation, aid)
        assert stop["EvalID"]

        async def migrated() -> bool:
            return len(hooks.stopped) == 1 and len(hooks.running) == 2

        await eventually(migrated)
        assert hooks.stopped[0]["ID"] == aid
        stops = [name for op, name, a in driver.calls if op == "stop" and a == aid]
        assert stops[-1] == "proxy"  # sidecars are killed after the main task
    finally:
        await twin.stop()
    assert all(
        t.done()
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task() and "twin" in repr(t).lower()
    )
