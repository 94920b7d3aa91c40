"""A real Prometheus (Debian's, on loopback) scrapes the controller on the devstack and
evaluates the alert rules: the target is up, `mesh_jobs{phase="Ready"}` counts the meshed job,
every metric the rules name is really exported, and the rules evaluate without error.
Prometheus is stopped at the end and its process is gone; the `world` fixture proves the same
for everything the devstack started.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import psutil
import pytest

from controller.app import App
from controller.dev.demo import web_job
from devstack.executor import RawExecDriver
from devstack.up import Devstack
from tests.support.e2e_stack import world
from tests.support.prometheus import RULE_FILES, Prometheus, running_prometheus
from tests.support.waiting import eventually

__all__ = ["world"]  # the fixture, used by name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The exported families the rules may name (recorded series have a colon, `mesh:...`).
METRIC = re.compile(
    r"(?<![\w:])(mesh_[a-z_]+|leader_is_leader|controller_[a-z_]+|nomad_event_stream_[a-z_]+)(?![\w:])"
)


async def _value(prom: Prometheus, expr: str) -> float | None:
    result = await prom.query(expr)
    return float(result[0]["value"][1]) if len(result) == 1 else None


async def test_prometheus_scrapes_the_controller_and_evaluates_the_rules(
    world: tuple[Devstack, RawExecDriver, App], tmp_path: Path
) -> None:
    _, _, app = world
    started = time.monotonic()
    await app.jobs.register_job(web_job(), enforce_index=None)
    target = f"127.0.0.1:{app.http.port}"
    async with running_prometheus(tmp_path, [target], RULE_FILES, interval="1s") as prom:
        pid = prom.process.pid

        async def ready() -> bool:
            status = await app.statuses.get("default", "web")
            return status is not None and status.phase == "Ready"

        await eventually(ready, within=45.0, what="web Ready in its status Variable")

        # The job is counted as Ready: the gauge follows every status write, the health
        # reconciler's Ready included.
        async def counted() -> bool:
            ready = await prom.query('mesh_jobs{phase="Ready"}')
            return (
                len(ready) == 1
                and await _value(prom, 'mesh_jobs{phase="Ready"}') == 1.0
                and await _value(prom, "sum(mesh_jobs)") == 1.0
            )

        await eventually(counted, within=10.0, what='mesh_jobs{phase="Ready"} scraped, 1 job')

        active = (await prom.api("targets"))["activeTargets"]
        assert [(t["scrapeUrl"], t["health"], t["labels"]["job"]) for t in active] == [
            (f"http://{target}/metrics", "up", "nomad-tls-mesh")
        ]
        assert await _value(prom, f'up{{instance="{target}"}}') == 1.0

        # Every family a rule reads is on the controller's /metrics (a typo would be silent).
        groups = (await prom.api("rules"))["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert {g["name"] for g in groups} == {"nomad-tls-mesh"}
        names = {m for r in rules for m in METRIC.findall(r["query"])}
        assert len(names) == 11, names
        for name in sorted(names):
            assert await prom.query(f"count({name})"), f"{name} is not exported"

        async def evaluated() -> bool:
            got = (await prom.api("rules"))["groups"]
            return all(r["health"] == "ok" and r["lastEvaluation"] for g in got for r in g["rules"])

        await eventually(evaluated, within=10.0, what="every rule evaluated without error")

        # The recording rules see the one leader and the Ready job; the stream heard Nomad.
        async def recorded() -> bool:
            leaders = await _value(prom, "mesh:leader_is_leader:sum")
            jobs = await _value(prom, "sum(mesh:jobs:max_by_phase)")
            silence = await _value(prom, "mesh:event_stream_silence_seconds")
            return leaders == 1.0 and jobs == 1.0 and silence is not None and silence < 30

        await eventually(recorded, within=10.0, what="recorded: one leader, one job, a live stream")

        # Before the first scrape there was no leader series (NoLeader went pending); once the
        # leader is scraped that resolves, and nothing fires on a healthy mesh.
        async def no_leader_quiet() -> bool:
            alerts = (await prom.api("alerts"))["alerts"]
            assert [a for a in alerts if a["state"] == "firing"] == []
            return not [a for a in alerts if a["labels"]["alertname"] == "MeshControllerNoLeader"]

        await eventually(no_leader_quiet, within=10.0, what="MeshControllerNoLeader resolved")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    print(f"\nprometheus E2E (submit -> checked, stopped) in {time.monotonic() - started:.1f}s")
