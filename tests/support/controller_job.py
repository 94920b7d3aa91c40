"""The controller's system job on the devstack: its raw_exec variant, and its running replicas.

`raw_exec_job_file` writes the committed HCL rendered by helm-less-deploy/gen.py with
`driver = "raw_exec"` and this venv's `controller`, so every replica is a real `controller run`
process started by the devstack's executor; `instances` and `statuses` find each running
replica's HTTP server and read its /status.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import aiohttp

from controller.nomad.jobs import NomadJobs

DEPLOY = Path(__file__).resolve().parents[2] / "helm-less-deploy"


def raw_exec_job_file(tmp: Path) -> Path:
    spec = importlib.util.spec_from_file_location("hld_gen_controller_job", DEPLOY / "gen.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    command = str(Path(sys.executable).parent / "controller")
    path = tmp / "mesh-controller.json"
    path.write_text(gen.job_json({"driver": "raw_exec", "command": command}))
    return path


async def instances(jobs: NomadJobs) -> dict[str, str]:
    """alloc ID -> base URL of its controller's HTTP server, for running allocations."""
    out = {}
    for stub in await jobs.job_allocations("mesh-controller", "default"):
        if stub["ClientStatus"] != "running" or stub["DesiredStatus"] != "run":
            continue
        alloc = await jobs.read_allocation(stub["ID"], "default") or {}
        ports = ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []
        for port in ports:
            if port["Label"] == "http":
                out[stub["ID"]] = f"http://{port['HostIP']}:{port['Value']}"
    return out


async def statuses(urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for alloc_id, url in urls.items():
            try:
                async with http.get(url + "/status") as resp:
                    out[alloc_id] = await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue
    return out
