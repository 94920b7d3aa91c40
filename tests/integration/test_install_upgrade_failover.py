"""An upgrade on the devstack with real controllers: `controllerctl install --version 2` replaces
every replica of version 1, waits until version 2 runs and one of its replicas holds the leader
lock, and its report names the failover (old holder, new holder, the leaderless gap).

The job is the raw_exec variant (tests/support/controller_job.py): one real `controller run`
per node, their environment from the `nomadVar` template as on Nomad. With raw_exec the
version is meta.version only (there is no image); the image tag is covered on the twin in
test_install_upgrade.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from controller.cmd import controllerctl
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables
from crds_equivalent.keys import VAR_LEADER
from devstack.up import Devstack, build_devstack
from tests.support.controller_job import instances, raw_exec_job_file, statuses
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

JOB = "mesh-controller"
FAILOVER = re.compile(
    r"failover: (\S+) \(alloc (\w+), job version (\d+)[^)]*\) -> (\S+) \(alloc (\w+), "
    r"job version (\d+)[^)]*\), leaderless for at most ([\d.]+)s"
)
SETTINGS = ("MESH_LEADER_TTL=10s", "MESH_LEADER_RENEW=3s", "MESH_RESYNC_INTERVAL=1h")


async def install(stack: Devstack, job_file: Path, version: str) -> Result:
    args = ["install", "--job-file", str(job_file), "--version", version, "--timeout", "120"]
    for item in SETTINGS:
        args += ["--env", item]
    return await asyncio.to_thread(
        CliRunner().invoke, controllerctl, args, env=stack.env(), catch_exceptions=False
    )


async def one_synced_leader(jobs: NomadJobs) -> dict[str, dict[str, Any]]:
    async def check() -> dict[str, dict[str, Any]] | None:
        found = await statuses(await instances(jobs))
        leaders = [s for s in found.values() if s.get("leading")]
        ok = len(found) == 3 and len(leaders) == 1 and leaders[0].get("synced")
        return found if ok else None

    found: dict[str, dict[str, Any]] = await eventually(
        check, within=60, every=0.25, what="three controllers, one synced leader"
    )
    return found


async def test_upgrade_replaces_every_replica_and_reports_the_failover(tmp_path: Path) -> None:
    stack = await build_devstack(nodes=3, acl=True, data_dir=str(tmp_path / "stack"))
    nomad = NomadClient(stack.nomad.url, token=stack.nomad.management_token, retry_budget=2.0)
    jobs = NomadJobs(nomad)
    try:
        job_file = raw_exec_job_file(tmp_path)
        document = json.loads(job_file.read_text())
        document["Job"]["Update"]["Stagger"] = 2_000_000_000  # 10 s in the package
        job_file.write_text(json.dumps(document))
        first = await install(stack, job_file, "1.0.0")
        assert first.exit_code == 0, first.output
        v1 = await one_synced_leader(jobs)
        (old_alloc,) = [a for a, s in v1.items() if s["leading"]]
        old_identity = v1[old_alloc]["identity"]
        lock = await NomadVariables(nomad, namespace="default").get(VAR_LEADER)
        assert lock is not None and lock.items["alloc"] == old_alloc  # the holder names it

        up = await install(stack, job_file, "2.0.0")
        assert up.exit_code == 0, up.output

        job = await jobs.get_job(JOB, "default")
        assert job is not None and (job["Version"], job["Meta"]["version"]) == (1, "2.0.0")
        allocs = await jobs.job_allocations(JOB, "default")
        new = {a["ID"] for a in allocs if a["JobVersion"] == 1 and a["ClientStatus"] == "running"}
        assert len(new) == 3
        assert all(a["DesiredStatus"] == "stop" for a in allocs if a["JobVersion"] == 0)
        lock = await NomadVariables(nomad, namespace="default").get(VAR_LEADER)
        assert lock is not None and lock.lock_id and lock.items["alloc"] in new
        new_identity = lock.items["identity"]
        assert new_identity != old_identity

        assert "rolled out job version 1 (meta.version 2.0.0)" in up.output
        # one node per 2 s stagger: the leader's replica may go first, so an old standby can
        # lead in between (two failovers); the first starts at the old leader, the last ends
        # at the new one, and each is short
        changes = FAILOVER.findall(up.output)
        assert 1 <= len(changes) <= 2, up.output
        assert changes[0][0] == old_identity and old_alloc.startswith(changes[0][1])
        assert changes[-1][3] == new_identity and lock.items["alloc"].startswith(changes[-1][4])
        assert changes[-1][5] == "1"
        # SIGTERM releases the lock and a standby retries every 2 s: no TTL to wait out
        assert all(float(change[6]) < 10.0 for change in changes), up.output
        print(up.output)
    finally:
        await nomad.close()
        await stack.stop()
