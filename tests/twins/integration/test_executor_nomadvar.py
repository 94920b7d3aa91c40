"""A raw_exec task whose environment comes from its job's Nomad Variable through a `nomadVar`
env template, as helm-less-deploy's controller job gets its tokens: with ACLs on, the task's
workload identity reads the Variable; the task waits ("Missing: nomad.var.block(...)") until
the Variable exists, then starts with its items in the environment, and restarts with the new
items when the Variable changes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from devstack.executor import ExecutorSettings, RawExecDriver, RetryPolicy
from devstack.nomad import NomadTwin, start_nomad_twin
from tests.support.executor_stack import NS, our_processes
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

# Writes GREETING and its pid to alloc/greeting, then idles.
APP = (
    "import os, time, pathlib;"
    "p = pathlib.Path(os.environ['NOMAD_ALLOC_DIR'], 'greeting');"
    "p.write_text(os.environ.get('GREETING', '-') + ' ' + str(os.getpid()));"
    "time.sleep(600)"
)
ENV_TEMPLATE = (
    '{{ with nomadVar "nomad/jobs/greeter" }}{{ range .Tuples }}{{ .K }}={{ .V }}\n'
    "{{ end }}{{ end }}\n"
)


def greeter() -> dict[str, Any]:
    return {
        "ID": "greeter",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "Tasks": [
                    {
                        "Name": "app",
                        "Driver": "raw_exec",
                        "Config": {"command": sys.executable, "args": ["-c", APP]},
                        "KillTimeout": 2 * NS,
                        "Templates": [
                            {
                                "EmbeddedTmpl": ENV_TEMPLATE,
                                "DestPath": "secrets/app.env",
                                "Envvars": True,
                                "ChangeMode": "restart",
                                "Perms": "0600",
                            }
                        ],
                    }
                ],
            }
        ],
    }


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[NomadTwin]:
    before = our_processes()
    driver = RawExecDriver(
        ExecutorSettings(
            nomad_poll=0.2,
            template_retry=RetryPolicy(attempts=5, backoff=0.1, max_backoff=0.2),
            template_event_interval=0.5,
        )
    )
    t = await start_nomad_twin(
        nodes=1, acl=True, drivers={"raw_exec": driver}, data_dir=str(tmp_path)
    )
    try:
        yield t
    finally:
        alloc_ids = set(t.state.allocs)
        await t.stop()
        await driver.close()
    left = our_processes(alloc_ids) - before
    assert not left, [psutil.Process(p).cmdline() for p in left if psutil.pid_exists(p)]


async def test_env_template_waits_for_the_variable_then_restarts_on_change(
    twin: NomadTwin, tmp_path: Path
) -> None:
    headers = {"X-Nomad-Token": twin.management_token or ""}
    async with aiohttp.ClientSession(base_url=twin.url, headers=headers) as http:

        async def call(method: str, path: str, body: Any) -> None:
            async with http.request(method, path, json=body) as resp:
                assert resp.status == 200, await resp.text()

        async def the_alloc() -> dict[str, Any]:
            (alloc,) = twin.state.allocs.values()
            return alloc

        await call("POST", "/v1/jobs", {"Job": greeter()})

        async def waiting() -> list[str]:
            alloc = await the_alloc()
            events = ((alloc.get("TaskStates") or {}).get("app") or {}).get("Events") or []
            return [e["DisplayMessage"] for e in events if e["Type"] == "Template"]

        missing = await eventually(waiting, within=20)
        assert missing[0] == "Missing: nomad.var.block(nomad/jobs/greeter@default.global)"
        assert (await the_alloc())["ClientStatus"] == "pending"

        greeting = tmp_path / "alloc" / (await the_alloc())["ID"] / "alloc" / "greeting"

        async def greeted(word: str) -> list[str] | None:
            text = greeting.read_text() if greeting.exists() else ""
            return text.split() if text.startswith(word + " ") else None

        await call("PUT", "/v1/var/nomad/jobs/greeter", {"Items": {"GREETING": "hello"}})
        _, first_pid = await eventually(lambda: greeted("hello"), within=20)
        env_file = greeting.parents[1] / "app" / "secrets" / "app.env"
        assert env_file.read_text() == "GREETING=hello\n\n"
        assert env_file.stat().st_mode & 0o777 == 0o600

        await call("PUT", "/v1/var/nomad/jobs/greeter", {"Items": {"GREETING": "bye"}})
        _, second_pid = await eventually(lambda: greeted("bye"), within=20)
        assert second_pid != first_pid
        alloc = await the_alloc()
        assert alloc["TaskStates"]["app"]["State"] == "running"
        types = [e["Type"] for e in alloc["TaskStates"]["app"]["Events"]]
        assert "Restart Signaled" in types
