"""The Nomad twin takes an injected job whose app port is a task-level port as Nomad does:
the register answers with Nomad's deprecation warning, the allocation carries the task's port
in ``AllocatedResources.Tasks[<task>].Networks`` and the TLS port in ``Shared.Ports``, and the
sidecar's environment names the app's address ``NOMAD_ADDR_<task>_<label>`` (the variable the
injected nginx.conf proxies to)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from devstack.nomad.server import NomadTwin
from devstack.nomad.taskenv import task_env
from devstack.nomad.warnings import TASK_NETWORKS_DEPRECATED
from reconcilers.injection.plan import Apply, plan_job
from tests.support.nomad_fixtures import job_spec


def task_port_job() -> dict[str, Any]:
    job = job_spec("ledger", meta={keys.MESH_TLS: "true"})
    task = job["TaskGroups"][0]["Tasks"][0]
    task["Resources"]["Networks"] = [{"MBits": 10, "DynamicPorts": [{"Label": "http"}]}]
    task["Services"] = [{"Name": "ledger", "PortLabel": "http"}]
    return job


async def _running_alloc(jobs: NomadJobs, job_id: str, version: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for stub in await jobs.job_allocations(job_id, "default"):
            if stub["JobVersion"] == version and stub["ClientStatus"] == "running":
                alloc = await jobs.read_allocation(stub["ID"], "default")
                assert alloc is not None
                return alloc
        await asyncio.sleep(0.1)
    raise AssertionError("no running allocation of the injected version")


async def test_injected_task_port_job_is_placed_with_both_networks(
    nomad: NomadClient, nomad_twin: NomadTwin, tmp_path: Path
) -> None:
    jobs = NomadJobs(nomad)
    decision = plan_job(task_port_job(), MeshConfig())
    assert isinstance(decision, Apply)
    answer = await jobs.register_job(decision.job, enforce_index=0)
    assert answer["Warnings"] == (
        "1 warning:\n\n"
        '* Group "app" has warnings: 1 error occurred:\n'
        '\t* Task "app" has warnings: 1 error occurred:\n'
        f"\t* {TASK_NETWORKS_DEPRECATED}"
    )
    alloc = await _running_alloc(jobs, "ledger", 0)
    resources = alloc["AllocatedResources"]
    (app_net,) = resources["Tasks"]["app"]["Networks"]
    (app_port,) = app_net["DynamicPorts"]
    assert app_port["Label"] == "http" and app_port["Value"] > 0
    assert app_net["IP"] != ""
    assert resources["Tasks"][keys.SIDECAR_TASK]["Networks"] is None
    shared = {p["Label"]: p for p in resources["Shared"]["Ports"]}
    assert set(shared) == {keys.tls_port_label("http")}
    assert shared[keys.tls_port_label("http")]["Value"] not in (0, app_port["Value"])

    group = alloc["Job"]["TaskGroups"][0]
    sidecar = next(t for t in group["Tasks"] if t["Name"] == keys.SIDECAR_TASK)
    env = task_env(alloc, sidecar, tmp_path)
    assert env["NOMAD_ADDR_app_http"] == f"{app_net['IP']}:{app_port['Value']}"
    tls = shared[keys.tls_port_label("http")]
    assert env["NOMAD_ADDR_mesh_tls_http"] == f"{tls['HostIP']}:{tls['Value']}"
    conf = sidecar["Templates"][-1]["EmbeddedTmpl"]
    assert '{{ env "NOMAD_ADDR_app_http" }}' in conf
    app_env = task_env(alloc, group["Tasks"][0], tmp_path)
    assert app_env["NOMAD_PORT_http"] == str(app_port["Value"])


async def test_a_group_port_job_registers_without_warnings(nomad: NomadClient) -> None:
    jobs = NomadJobs(nomad)
    job = job_spec("plain")
    job["TaskGroups"][0]["Networks"] = [{"DynamicPorts": [{"Label": "http"}]}]
    answer = await jobs.register_job(job, enforce_index=0)
    assert answer["Warnings"] == ""
