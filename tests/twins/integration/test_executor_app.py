"""raw_exec through the Nomad twin: a real Python HTTP app, its Consul registration and checks,
restart/signal endpoints, restart policy, lifecycle order, kill signal/timeout, no leftovers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from devstack.nomad.codec import parse_rfc3339
from devstack.vault import OpenBao
from tests.support.executor_stack import (
    NS,
    Stack,
    app_task,
    events,
    running_stack,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def stack(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(openbao, tmp_path / "data") as s:
        yield s


def web_job(restart: dict[str, Any] | None = None, **task_extra: Any) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": "web",
        "Count": 1,
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Services": [
            {
                "Name": "web",
                "PortLabel": "http",
                "Checks": [
                    {"Name": "alive", "Type": "http", "Path": "/", "Interval": NS, "Timeout": NS}
                ],
            }
        ],
        "Tasks": [app_task(**task_extra)],
    }
    if restart is not None:
        group["RestartPolicy"] = restart
    return {"ID": "web", "Type": "service", "TaskGroups": [group]}


async def get(http: aiohttp.ClientSession, addr: str) -> str | None:
    try:
        async with http.get(f"http://{addr}/", timeout=aiohttp.ClientTimeout(total=2)) as r:
            return await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return None


def addr_of(alloc: dict[str, Any]) -> str:
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]
    return f"{port['HostIP']}:{port['Value']}"


async def running_alloc(stack: Stack, job_id: str = "web") -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        allocs = [a for a in await stack.allocs(job_id) if a["ClientStatus"] == "running"]
        return allocs[0] if allocs else None

    result: dict[str, Any] = await eventually(probe, within=20.0)
    return result


async def test_app_serves_registers_passes_and_stop_kills_and_deregisters(stack: Stack) -> None:
    await stack.register(web_job())
    alloc = await running_alloc(stack)
    addr = addr_of(alloc)
    assert addr.startswith("127.0.0.1")  # the node's own loopback address (node-1 or node-2)
    body = await eventually(lambda: get(stack.http, addr), within=20.0)
    pid = stack.driver.pid(alloc["ID"], "app")
    assert body == f"pid={pid} hups=0 task=app"
    proc = psutil.Process(pid)
    env = proc.environ()
    task_dir = Path(stack.nomad.client.alloc_root) / alloc["ID"] / "app"
    assert env["NOMAD_ALLOC_ID"] == alloc["ID"]
    assert env["NOMAD_TASK_DIR"] == str(task_dir / "local")
    assert env["NOMAD_SECRETS_DIR"] == str(task_dir / "secrets")
    assert env["NOMAD_ALLOC_DIR"] == str(task_dir.parent / "alloc")
    assert env["NOMAD_ADDR_http"] == addr
    assert "VAULT_TOKEN" not in env  # no vault block, and the agent's env is deny-listed
    assert proc.cwd() == str(task_dir)
    assert os.getpgid(pid) == pid  # its own process group
    assert (task_dir / "secrets").stat().st_mode & 0o777 == 0o700

    async def passing() -> list[dict[str, Any]]:
        entries = await stack.health("web")
        return [e for e in entries if all(c["Status"] == "passing" for c in e["Checks"])]

    [entry] = await eventually(passing, within=20.0)
    assert f"{entry['Service']['Address']}:{entry['Service']['Port']}" == addr
    assert entry["Service"]["ID"] == f"_nomad-task-{alloc['ID']}-group-web-web-http"

    await stack.deregister("web")

    async def gone() -> bool:
        # The process exits before the client records it: wait for the alloc's status too.
        stopped = (await stack.allocs("web"))[0]["ClientStatus"] == "complete"
        return stopped and not psutil.pid_exists(pid) and await stack.health("web") == []

    await eventually(gone, within=20.0)
    final = (await stack.allocs("web"))[0]
    kinds = events(final, "app")
    assert kinds[-3:] == ["Killing", "Terminated", "Killed"]
    terminated = final["TaskStates"]["app"]["Events"][-2]
    assert (terminated["ExitCode"], terminated["Signal"]) == (128 + signal.SIGINT, signal.SIGINT)


async def test_restart_and_signal_endpoints_act_on_the_real_process(stack: Stack) -> None:
    await stack.register(web_job())
    alloc = await running_alloc(stack)
    addr = addr_of(alloc)
    first = stack.driver.pid(alloc["ID"], "app")
    assert (
        await eventually(lambda: get(stack.http, addr), within=20.0)
        == f"pid={first} hups=0 task=app"
    )

    assert await stack.client_op(alloc["ID"], "signal", {"Signal": "SIGHUP", "Task": "app"}) == 200
    assert await eventually(lambda: _has(stack, addr, "hups=1"), within=20.0)

    assert await stack.client_op(alloc["ID"], "restart", {"TaskName": "app"}) == 200
    second = stack.driver.pid(alloc["ID"], "app")
    assert second is not None
    assert second != first
    assert not psutil.pid_exists(first)
    assert (
        await eventually(lambda: get(stack.http, addr), within=20.0)
        == f"pid={second} hups=0 task=app"
    )
    latest = (await stack.allocs("web"))[0]
    state = latest["TaskStates"]["app"]
    assert state["Restarts"] == 1
    assert events(latest, "app")[-4:] == ["Restart Signaled", "Terminated", "Restarting", "Started"]


async def _has(stack: Stack, addr: str, text: str) -> bool:
    body = await get(stack.http, addr)
    return body is not None and text in body


async def test_crash_turns_check_critical_then_restart_policy_brings_it_back(stack: Stack) -> None:
    policy = {"Attempts": 2, "Interval": 60 * NS, "Delay": 3 * NS, "Mode": "fail"}
    await stack.register(web_job(restart=policy))
    alloc = await running_alloc(stack)
    first = stack.driver.pid(alloc["ID"], "app")
    assert first is not None

    async def status() -> str:
        entries = await stack.health("web")
        checks = [c for e in entries for c in e["Checks"] if c["ServiceName"] == "web"]
        return checks[0]["Status"] if checks else ""

    assert await eventually(lambda: _is(status, "passing"), within=20.0)
    os.kill(first, signal.SIGKILL)
    assert await eventually(lambda: _is(status, "critical"), within=20.0)
    assert await eventually(lambda: _is(status, "passing"), within=20.0)
    second = stack.driver.pid(alloc["ID"], "app")
    assert second not in (None, first)
    latest = (await stack.allocs("web"))[0]
    exit_event = next(e for e in latest["TaskStates"]["app"]["Events"] if e["Type"] == "Terminated")
    assert (exit_event["ExitCode"], exit_event["Signal"]) == (137, 9)
    assert "Restarting" in events(latest, "app")
    assert latest["TaskStates"]["app"]["Restarts"] == 1


async def _is(probe: Any, want: str) -> bool:
    return bool(await probe() == want)


async def test_lifecycle_order_kill_timeout_and_poststop(stack: Stack, tmp_path: Path) -> None:
    """prestart (ephemeral) -> prestart sidecar -> main -> poststart; on stop a task that ignores
    its kill signal is SIGKILLed after KillTimeout, the sidecar goes last, poststop runs."""
    trace = tmp_path / "trace.log"
    stubborn = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "open(sys.argv[1], 'a').write(os.environ['NOMAD_TASK_NAME'] + ' start\\n')\n"
        "time.sleep(600)\n"
    )

    def task(name: str, hook: str = "", sidecar: bool = False, script: str = "") -> dict[str, Any]:
        body = script or (
            "import os, sys\n"
            "open(sys.argv[1], 'a').write(os.environ['NOMAD_TASK_NAME'] + ' start\\n')\n"
        )
        out: dict[str, Any] = {
            "Name": name,
            "Driver": "raw_exec",
            "Config": {"command": sys.executable, "args": ["-c", body, str(trace)]},
            "KillTimeout": NS // 2,
        }
        if hook:
            out["Lifecycle"] = {"Hook": hook, "Sidecar": sidecar}
        return out

    sleeper = stubborn.replace("signal.signal(signal.SIGINT, signal.SIG_IGN)\n", "")
    job = {
        "ID": "life",
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "Tasks": [
                    task("main", script=stubborn),
                    task("post", "poststart", script=sleeper),
                    task("side", "prestart", True, script=sleeper),
                    task("init", "prestart"),
                    task("cleanup", "poststop"),
                ],
            }
        ],
    }
    await stack.register(job)
    alloc = await running_alloc(stack, "life")

    async def all_started() -> bool:
        return trace.exists() and len(trace.read_text().split("\n")) >= 5

    await eventually(all_started, within=20.0)
    started = [line.split()[0] for line in trace.read_text().splitlines()]
    assert started.index("init") < started.index("main")
    assert started.index("side") < started.index("main")
    # A poststart task starts once the main task runs; which script writes its trace line
    # first is then up to the OS scheduler, so the order is read from the task states.
    states = (await stack.allocs("life"))[0]["TaskStates"]
    started_at = {name: parse_rfc3339(states[name]["StartedAt"]) for name in ("main", "post")}
    assert started_at["main"] <= started_at["post"]
    main_pid = stack.driver.pid(alloc["ID"], "main")
    assert main_pid is not None

    await stack.deregister("life")

    async def complete() -> dict[str, Any] | None:
        a = (await stack.allocs("life"))[0]
        return a if a["ClientStatus"] == "complete" else None

    final = await eventually(complete, within=20.0)
    lines = trace.read_text().splitlines()
    assert lines[-1] == "cleanup start"
    assert not psutil.pid_exists(main_pid)
    main_exit = next(e for e in final["TaskStates"]["main"]["Events"] if e["Type"] == "Terminated")
    assert (main_exit["ExitCode"], main_exit["Signal"]) == (137, 9)  # SIGINT ignored -> SIGKILL
    side_killed = final["TaskStates"]["side"]["Events"][-1]["Time"]
    main_killed = final["TaskStates"]["main"]["Events"][-1]["Time"]
    assert side_killed >= main_killed
    assert final["TaskStates"]["cleanup"]["State"] == "dead"
    assert "Started" in events(final, "cleanup")
    await asyncio.sleep(0)


async def test_each_allocation_binds_its_own_node_address_and_port(stack: Stack) -> None:
    job = web_job()
    job["TaskGroups"][0]["Count"] = 3  # two nodes: one of them runs two allocations
    await stack.register(job)

    async def three_running() -> list[dict[str, Any]]:
        allocs = [a for a in await stack.allocs("web") if a["ClientStatus"] == "running"]
        return allocs if len(allocs) == 3 else []

    allocs = await eventually(three_running, within=20.0)
    addrs = {addr_of(a) for a in allocs}
    assert len(addrs) == 3
    assert {a.split(":")[0] for a in addrs} == {"127.0.0.11", "127.0.0.12"}
    for alloc in allocs:
        pid = stack.driver.pid(alloc["ID"], "app")
        body = await eventually(lambda a=alloc: get(stack.http, addr_of(a)), within=20.0)
        assert body == f"pid={pid} hups=0 task=app"


async def test_stopping_the_twin_kills_every_task_process(stack: Stack) -> None:
    await stack.register(web_job())
    alloc = await running_alloc(stack)
    pid = stack.driver.pid(alloc["ID"], "app")
    assert pid is not None
    await stack.nomad.stop()  # the fixture's stop_stack stops it again: must be harmless
    assert not psutil.pid_exists(pid)
    assert stack.driver.pids() == []
