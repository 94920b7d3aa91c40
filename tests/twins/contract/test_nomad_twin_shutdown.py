"""Contract tests: how the twin stops an allocation, in Nomad's order.

Nomad's alloc runner (killTasks) first runs the pre-kill hooks: the group's services are
deregistered and the group's ShutdownDelay passes (no task event). Then each main task gets
Killing, its own services are deregistered, its ShutdownDelay passes ("Waiting for shutdown
delay", "Waiting for shutdown_delay of <Go duration> before killing the task.", the task back
in pending), and only then the kill signal; sidecars go last. An agent shutdown skips all this.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin, TaskContext, start_nomad_twin
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)

NS = 1_000_000_000
GROUP_DELAY = 0.4
TASK_DELAY = 0.3


def service(name: str) -> dict[str, Any]:
    return {"Name": name, "PortLabel": "http", "Provider": "consul"}


def job(group_delay: float | None = GROUP_DELAY) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": "web",
        "Count": 1,
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Services": [service("web")],
        "Tasks": [
            {
                "Name": "app",
                "Driver": "raw_exec",
                "Services": [service("web-app")],
                "ShutdownDelay": int(TASK_DELAY * NS),
            },
            {
                "Name": "proxy",
                "Driver": "raw_exec",
                "Lifecycle": {"Hook": "prestart", "Sidecar": True},
            },
            {"Name": "plain", "Driver": "raw_exec"},
        ],
    }
    if group_delay is not None:
        group["ShutdownDelay"] = int(group_delay * NS)
    return {"Job": {"ID": "shop", "Type": "service", "TaskGroups": [group]}}


class Recorder:
    """Alloc hooks and task driver in one: every call with the loop time it happened at.

    At each kill it also notes what the server holds for the task at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, str | None]] = []
        self.at_kill: dict[str, tuple[str, str]] = {}  # task -> (task state, alloc status)
        self.twin: NomadTwin | None = None

    def note(self, op: str, task: str | None) -> None:
        self.calls.append((asyncio.get_running_loop().time(), op, task))

    def when(self, op: str, task: str | None) -> float:
        return next(t for t, o, name in self.calls if (o, name) == (op, task))

    def ops(self, op: str) -> list[str | None]:
        return [name for _, o, name in self.calls if o == op]

    async def on_alloc_running(self, alloc: dict[str, Any]) -> None:
        self.note("running", None)

    async def on_alloc_stopping(self, alloc: dict[str, Any], task: str | None) -> None:
        self.note("deregister", task)

    async def on_alloc_stopped(self, alloc: dict[str, Any]) -> None:
        self.note("stopped", None)

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.note("start", task["Name"])

    async def stop(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        assert self.twin is not None
        stored = self.twin.state.allocs[alloc["ID"]]
        state = (stored["TaskStates"] or {})[task["Name"]]["State"]
        self.at_kill[task["Name"]] = (state, stored["ClientStatus"])
        self.note("kill", task["Name"])

    async def signal(
        self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext, signal: str
    ) -> None:
        self.note("signal", task["Name"])

    async def restart(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.note("restart", task["Name"])


async def started(
    http: aiohttp.ClientSession, rec: Recorder, body: dict[str, Any]
) -> tuple[NomadTwin, str]:
    twin = await start_nomad_twin(
        nodes=1, alloc_hooks=rec, drivers={"raw_exec": rec}, heartbeat_interval=0.2
    )
    rec.twin = twin
    await http.post(f"{twin.url}/v1/jobs", json=body)
    await eventually(
        lambda: rec.ops("running") == [None] and len(rec.ops("start")) >= 3,
        every=0.02,
        what="the alloc running with its three tasks started",
    )
    (aid,) = twin.state.allocs
    return twin, aid


async def alloc_of(http: aiohttp.ClientSession, twin: NomadTwin, aid: str) -> dict[str, Any]:
    async with http.get(f"{twin.url}/v1/allocation/{aid}") as r:
        body: dict[str, Any] = await r.json()
        return body


async def test_stop_deregisters_then_waits_the_delays_then_kills_mains_before_sidecars(
    http: aiohttp.ClientSession,
) -> None:
    rec = Recorder()
    twin, aid = await started(http, rec, job())
    try:
        await http.delete(f"{twin.url}/v1/job/shop")
        await eventually(lambda: rec.ops("stopped") == [None], every=0.02, what="alloc stopped")
        alloc = await alloc_of(http, twin, aid)
    finally:
        await twin.stop()

    # The group's services go first, before anything is killed; then each task with services
    # (and only those) right before its own kill.
    assert rec.ops("deregister") == [None, "app"]
    group_gone = rec.when("deregister", None)
    assert group_gone < min(t for t, op, _ in rec.calls if op == "kill")
    # The group delay separates the group's deregistration from every task's kill.
    for task in ("app", "plain", "proxy"):
        assert rec.when("kill", task) - group_gone >= GROUP_DELAY
    # The app's own delay runs after its services are gone and before its kill signal.
    assert rec.when("deregister", "app") - group_gone >= GROUP_DELAY
    assert rec.when("kill", "app") - rec.when("deregister", "app") >= TASK_DELAY
    assert rec.when("kill", "proxy") > max(rec.when("kill", t) for t in ("app", "plain"))

    states = alloc["TaskStates"]
    app_events = [e["Type"] for e in states["app"]["Events"]]
    assert app_events[-3:] == ["Killing", "Waiting for shutdown delay", "Killed"]
    waiting = states["app"]["Events"][-2]
    assert waiting["DisplayMessage"] == (
        "Waiting for shutdown_delay of 300ms before killing the task."
    )
    for task in ("proxy", "plain"):  # no task delay, no waiting event
        assert [e["Type"] for e in states[task]["Events"]][-2:] == ["Killing", "Killed"]
    # While it waited, the app was pending again (Nomad's UpdateState(pending)); the sidecar
    # still ran, so the allocation stayed running.
    assert rec.at_kill["app"] == ("pending", "running")
    assert alloc["ClientStatus"] == "complete"
    assert all(s["State"] == "dead" and not s["Failed"] for s in states.values())


async def test_without_delays_deregistration_still_precedes_the_kill(
    http: aiohttp.ClientSession,
) -> None:
    rec = Recorder()
    body = job(group_delay=None)
    body["Job"]["TaskGroups"][0]["Tasks"][0].pop("ShutdownDelay")
    twin, aid = await started(http, rec, body)
    try:
        async with http.post(f"{twin.url}/v1/allocation/{aid}/stop") as r:
            assert r.status == 200
        await eventually(lambda: rec.ops("stopped") == [None], every=0.02, what="alloc stopped")
        alloc = await alloc_of(http, twin, aid)
    finally:
        await twin.stop()
    order = [(op, task) for _, op, task in rec.calls if op in ("deregister", "kill")]
    assert order.index(("deregister", None)) == 0
    assert order.index(("deregister", "app")) == order.index(("kill", "app")) - 1
    assert all(
        e["Type"] != "Waiting for shutdown delay"
        for s in alloc["TaskStates"].values()
        for e in s["Events"]
    )


async def test_agent_shutdown_cuts_a_stop_short_and_skips_the_delays(
    http: aiohttp.ClientSession,
) -> None:
    rec = Recorder()
    body = job(group_delay=60.0)
    body["Job"]["TaskGroups"][0]["Tasks"][0]["ShutdownDelay"] = 60 * NS
    twin, _ = await started(http, rec, body)
    await http.delete(f"{twin.url}/v1/job/shop")
    # Once deregistered, the stop is in its 60 s group delay.
    await eventually(lambda: rec.ops("deregister") == [None], every=0.02, what="deregistered")
    async with asyncio.timeout(10):  # a hang guard: waiting out 60 s delays would trip it
        await twin.stop()
    assert sorted(name for name in rec.ops("kill") if name) == ["app", "plain", "proxy"]
    assert rec.ops("deregister") == [None]  # no task hooks once the agent shuts down
