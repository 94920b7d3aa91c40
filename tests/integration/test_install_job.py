"""helm-less-deploy/mesh-controller.nomad.json registers in the Nomad twin as a system job and
the scheduler places exactly one allocation on every node (no executor: simulated drivers)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from devstack.nomad.server import start_nomad_twin

pytestmark = pytest.mark.timeout(60)

DEPLOY = Path(__file__).resolve().parents[2] / "helm-less-deploy"


def committed_job() -> dict[str, Any]:
    return dict(json.loads((DEPLOY / "mesh-controller.nomad.json").read_text())["Job"])


def raw_exec_job() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("hld_gen", DEPLOY / "gen.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = gen.job_json({"driver": "raw_exec", "command": "/opt/mesh/bin/controller"})
    return dict(json.loads(text)["Job"])


async def running_allocs(jobs: NomadJobs, count: int) -> list[dict[str, Any]]:
    allocs: list[dict[str, Any]] = []
    for _ in range(200):
        allocs = await jobs.job_allocations("mesh-controller", "default")
        running = [a for a in allocs if a["ClientStatus"] == "running"]
        if len(running) >= count:
            return running
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {count} running allocations: {allocs}")


@pytest.mark.parametrize("nodes", [1, 4])
async def test_json_job_places_one_allocation_per_node(nodes: int) -> None:
    twin = await start_nomad_twin(nodes=nodes)
    client = NomadClient(twin.url, retry_budget=2.0)
    try:
        jobs = NomadJobs(client)
        answer = await jobs.register_job(committed_job(), enforce_index=0)
        assert answer["EvalID"]
        running = await running_allocs(jobs, nodes)
        assert len(running) == nodes
        assert len({a["NodeID"] for a in running}) == nodes
        assert len(await jobs.job_allocations("mesh-controller", "default")) == nodes
        stored = await jobs.get_job("mesh-controller", "default")
        assert stored is not None
        assert stored["Type"] == "system"
        task = stored["TaskGroups"][0]["Tasks"][0]
        assert task["Templates"][0]["Envvars"] is True
        assert task["KillTimeout"] == 45 * 10**9
    finally:
        await client.close()
        await twin.stop()


async def test_raw_exec_variant_registers_too() -> None:
    twin = await start_nomad_twin(nodes=2)
    client = NomadClient(twin.url, retry_budget=2.0)
    try:
        jobs = NomadJobs(client)
        await jobs.register_job(raw_exec_job(), enforce_index=0)
        assert len(await running_allocs(jobs, 2)) == 2
        stored = await jobs.get_job("mesh-controller", "default")
        assert stored is not None
        task = stored["TaskGroups"][0]["Tasks"][0]
        assert task["Driver"] == "raw_exec"
        assert task["Config"] == {"command": "/opt/mesh/bin/controller", "args": ["run"]}
    finally:
        await client.close()
        await twin.stop()
