"""The system job on the devstack: one real `controller run` process per node, one leader, and a
SIGKILLed leader is replaced within 2×TTL + LockDelay + a margin without an extra job version
(Nomad's lock timer runs 2×TTL from the last renew, then holds the lock for LockDelay).

`controllerctl install` does the real install (PKI, tokens, Nomad ACL policy and token, the
Variable) and registers the job as the committed HCL renders it with `driver = "raw_exec"`:
its `nomadVar` env template is rendered by the devstack's template runner with each task's
workload identity, exactly as Nomad would give the controller its tokens.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from controller.cmd import controllerctl
from controller.deploy.controller_identity import TOKEN_PERIOD
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from devstack.up import Devstack, build_devstack
from tests.support.controller_job import DEPLOY, instances, raw_exec_job_file, statuses
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(150)

TTL = 10.0  # Nomad's smallest lock TTL; LockDelay = TTL (controller.app)
BOUND = 2 * TTL + TTL  # nomad/locks.go: the TTL timer fires at 2×TTL, then LockDelay
RETRY = 2.0  # a standby tries the lock this often (controller.app Tuning.leader_retry)
MARGIN = 15.0  # process scheduling on a loaded 2-core machine (the suite runs on both cores)


def meshed_job() -> dict[str, Any]:
    return {
        "ID": "web",
        "Name": "web",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 1,
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": "web", "PortLabel": "http", "Provider": "consul"}],
                "Tasks": [
                    {
                        "Name": "app",
                        "Driver": "docker",
                        "Config": {"image": "example/web:1"},
                        "Resources": {"CPU": 50, "MemoryMB": 32},
                    }
                ],
            }
        ],
    }


async def vault_token_expiries(urls: dict[str, str]) -> list[float]:
    """Each replica's mesh_vault_token_expiry_timestamp_seconds (absent: not looked up yet)."""
    out: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for url in urls.values():
            async with http.get(url + "/metrics") as resp:
                text = await resp.text()
            found = re.search(r"^mesh_vault_token_expiry_timestamp_seconds (\S+)$", text, re.M)
            if found:
                out.append(float(found.group(1)))
    return out


async def test_system_job_one_leader_and_failover_without_extra_versions(tmp_path: Path) -> None:
    stack: Devstack = await build_devstack(nodes=3, acl=True, data_dir=str(tmp_path / "stack"))
    nomad = NomadClient(stack.nomad.url, token=stack.nomad.management_token, retry_budget=2.0)
    jobs = NomadJobs(nomad)
    try:
        job_file = raw_exec_job_file(tmp_path)
        args = ["install", "--job-file", str(job_file), "--env", f"MESH_LEADER_TTL={TTL:g}s"]
        args += ["--env", "MESH_LEADER_RENEW=3s", "--env", "MESH_RESYNC_INTERVAL=1h"]
        result = await asyncio.to_thread(
            CliRunner().invoke, controllerctl, args, env=stack.env(), catch_exceptions=False
        )
        assert result.exit_code == 0, result.output

        # Registered as committed, but for the driver variables: the nomadVar template runs.
        committed = json.loads((DEPLOY / "mesh-controller.nomad.json").read_text())["Job"]
        stored = await jobs.get_job("mesh-controller", "default")
        assert stored is not None
        task = stored["TaskGroups"][0]["Tasks"][0]
        want = committed["TaskGroups"][0]["Tasks"][0]
        assert (task["Driver"], want["Driver"]) == ("raw_exec", "docker")
        assert task["Env"] == want["Env"]
        fields = ("EmbeddedTmpl", "DestPath", "Envvars", "ChangeMode", "Perms")
        assert [{f: t[f] for f in fields} for t in task["Templates"]] == want["Templates"]

        async def three_up() -> dict[str, dict[str, Any]] | None:
            found = await statuses(await instances(jobs))
            leaders = [s for s in found.values() if s.get("leading")]
            ok = len(found) == 3 and len(leaders) == 1 and leaders[0].get("synced")
            return found if ok else None

        found = await eventually(
            three_up, within=60, every=0.25, what="three controllers, one synced leader"
        )
        assert len({s["identity"] for s in found.values()}) == 3

        # Each replica runs on the token Nomad wrote from its vault block (VAULT_TOKEN_FILE):
        # a 30 min periodic token of the JWT role; the Variable holds no Vault token at all.
        variable = await nomad.request("GET", "/v1/var/nomad/jobs/mesh-controller")
        assert "VAULT_TOKEN" not in variable.body["Items"]

        async def on_workload_tokens() -> list[float] | None:
            expiries = await vault_token_expiries(await instances(jobs))
            now = time.time()
            fits = len(expiries) == 3 and all(now < e <= now + TOKEN_PERIOD for e in expiries)
            return expiries if fits else None

        await eventually(on_workload_tokens, within=20, every=0.5, what="workload-identity tokens")
        assert all(s["leader"].get("identity") for s in found.values())

        await jobs.register_job(meshed_job(), enforce_index=0)

        async def injected() -> int | None:
            versions = await jobs.job_versions("web", "default")
            metas = [g.get("Meta") or {} for g in versions[0]["TaskGroups"]] if versions else []
            return len(versions) if any("mesh.tls.injected" in m for m in metas) else None

        versions_before = await eventually(
            injected, within=30, every=0.25, what="the meshed job injected"
        )

        (leader_alloc,) = [a for a, s in found.items() if s["leading"]]
        pid = stack.executor.pid(leader_alloc, "controller")
        assert pid is not None
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        killed = found[leader_alloc]["identity"]

        async def new_leader() -> dict[str, Any] | None:
            # Nomad restarts the killed task in its allocation after the restart delay (10 s),
            # long before the lock frees (2×TTL + LockDelay), so that new process competes
            # with the other nodes' standbys: any process but the killed one is a new leader.
            now = await statuses(await instances(jobs))
            return next(
                (s for s in now.values() if s["identity"] != killed and s.get("leading")), None
            )

        leader = await eventually(
            new_leader, within=BOUND + RETRY + MARGIN, every=0.25, what="a new leader"
        )
        took = time.monotonic() - killed_at
        assert leader["identity"] != found[leader_alloc]["identity"]

        async def reconciled() -> bool:
            now = await statuses(await instances(jobs))
            me = next((s for s in now.values() if s["identity"] == leader["identity"]), {})
            return bool(me.get("synced")) and any(j["job"] == "web" for j in me.get("jobs", []))

        await eventually(
            reconciled, within=20, every=0.25, what="the new leader reconciled the meshed job"
        )
        assert len(await jobs.job_versions("web", "default")) == versions_before
        print(f"failover took {took:.1f}s (bound {BOUND + RETRY + MARGIN:.0f}s)")
    finally:
        await nomad.close()
        await stack.stop()
