"""`controllerctl install` upgrades in place (Nomad twin with ACLs, real OpenBao).

--dry-run prints Nomad's own diff of the version change and writes nothing; the upgrade
changes meta.version and the image tag, makes one new job version and waits until every
allocation runs it; installing the previous version is the rollback. No controller runs here
(simulated drivers), so the report says nobody held the lock; the failover with real
controllers is in test_install_upgrade_failover.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from click.testing import CliRunner, Result

from controller.cmd import controllerctl
from controller.deploy.install import packaged_job_file
from controller.nomad.client import NomadClient
from controller.vault import VaultClient, VaultConnection
from devstack.nomad.server import NomadTwin, start_nomad_twin
from devstack.vault import OpenBao
from tests.support.install_world import install_world

pytestmark = pytest.mark.timeout(120)

JOB = "mesh-controller"
TAMPERED = {  # a narrower policy someone wrote by hand, valid in each system
    "Vault": 'path "pki_int/cert/ca_chain" { capabilities = ["read"] }',
    "Nomad": 'namespace "*" { policy = "read" }',
}


@pytest_asyncio.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    twin = await start_nomad_twin(nodes=3, acl=True)
    try:
        yield twin
    finally:
        await twin.stop()


def fast_job_file(tmp: Path) -> Path:
    """The packaged job with a 1 s stagger: Nomad replaces one node per stagger (10 s in the
    package), which the test need not wait out."""
    document = json.loads(packaged_job_file().read_text())
    document["Job"]["Update"]["Stagger"] = 1_000_000_000
    path = tmp / "mesh-controller.json"
    path.write_text(json.dumps(document))
    return path


async def ctl(twin: NomadTwin, bao: OpenBao, *args: str) -> Result:
    env = {
        "NOMAD_ADDR": twin.url,
        "NOMAD_TOKEN": twin.management_token or "",
        "VAULT_ADDR": bao.addr,
        "VAULT_TOKEN": bao.root_token,
    }
    return await asyncio.to_thread(
        CliRunner().invoke, controllerctl, list(args), env=env, catch_exceptions=False
    )


async def stored(nomad: NomadClient) -> tuple[int, str, str, list[dict[str, Any]]]:
    """(job version, meta.version, image, live allocations)"""
    job = (await nomad.request("GET", f"/v1/job/{JOB}")).body
    allocs = (await nomad.request("GET", f"/v1/job/{JOB}/allocations")).body or []
    image = job["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
    live = [a for a in allocs if a["DesiredStatus"] == "run"]
    return job["Version"], job["Meta"]["version"], image, live


async def test_upgrade_dry_run_diff_then_in_place_then_rollback(
    twin: NomadTwin, openbao: OpenBao, tmp_path: Path
) -> None:
    job = ("--job-file", str(fast_job_file(tmp_path)))
    nomad = NomadClient(twin.url, token=twin.management_token, retry_budget=2.0)
    vault = VaultClient(VaultConnection(addr=openbao.addr, token=openbao.root_token))
    try:
        first = await ctl(twin, openbao, "install", *job, "--version", "0.1.0")
        assert first.exit_code == 0, first.output
        version, meta, image, allocs = await stored(nomad)
        assert (version, meta, image) == (0, "0.1.0", "nomad-tls-mesh:0.1.0")
        assert [a["ClientStatus"] for a in allocs] == ["running"] * 3  # install waited for them

        # someone narrowed both policies by hand: the dry run shows the rules it would restore
        await vault.write("sys/policies/acl/mesh-controller", {"policy": TAMPERED["Vault"]})
        body = {"Name": "mesh-controller", "Rules": TAMPERED["Nomad"]}
        await nomad.request("POST", "/v1/acl/policy/mesh-controller", body=body, namespace=None)
        before = await install_world(nomad, vault)
        dry = await ctl(twin, openbao, "install", *job, "--dry-run", "--version", "0.2.0")
        assert dry.exit_code == 0, dry.output
        for system, what in (("Vault", "update policy"), ("Nomad", "update ACL policy")):
            step = dry.output.split(f"would    {system}: {what} mesh-controller\n", 1)[1]
            lines = [line.strip() for line in step.split("\n")]
            assert f"-{TAMPERED[system]}" in lines[:3], dry.output
            assert any(line.startswith("+") for line in lines[:8]), dry.output
        assert "would    Nomad: update system job mesh-controller (namespace default)" in dry.output
        assert '+/- Meta[version]: "0.1.0" => "0.2.0"' in dry.output
        assert '+/- image: "nomad-tls-mesh:0.1.0" => "nomad-tls-mesh:0.2.0"' in dry.output
        assert 'Task Group: "controller" (3 create/destroy update)' in dry.output
        assert "3 change(s) would be made" in dry.output
        assert await install_world(nomad, vault) == before

        up = await ctl(twin, openbao, "install", *job, "--version", "0.2.0")
        assert up.exit_code == 0, up.output
        version, meta, image, allocs = await stored(nomad)
        assert (version, meta, image) == (1, "0.2.0", "nomad-tls-mesh:0.2.0")
        assert len(allocs) == 3
        assert all(a["JobVersion"] == 1 and a["ClientStatus"] == "running" for a in allocs)
        assert "rolled out job version 1 (meta.version 0.2.0)" in up.output
        assert "3 of 3 allocation(s) of version 1 running" in up.output
        assert "free before this version was registered; still free" in up.output

        back = await ctl(
            twin, openbao, "install", *job, "--version", "0.1.0", "--image", "x/mc:0.1.0"
        )
        assert back.exit_code == 0, back.output
        version, meta, image, allocs = await stored(nomad)
        assert (version, meta, image) == (2, "0.1.0", "x/mc:0.1.0")
        assert {a["JobVersion"] for a in allocs} == {2}
        again = await ctl(
            twin, openbao, "install", *job, "--version", "0.1.0", "--image", "x/mc:0.1.0"
        )
        assert again.exit_code == 0 and "unchanged: all" in again.output
        assert (await stored(nomad))[0] == 2

        # the packaged job's 10 s stagger outlasts a 1 s timeout: exit 1, saying what is left
        slow = await ctl(twin, openbao, "install", "--version", "0.3.0", "--timeout", "1")
        assert slow.exit_code == 1
        waiting = r"not done after 1s: waiting for [01] of 1 allocation\(s\) of version 3 running"
        assert re.search(waiting + ", 2 of older versions still live", slow.output), slow.output
        assert "stopped: 1 change(s) made before the failure below" in slow.output
        quick = await ctl(twin, openbao, "install", "--version", "0.4.0", "--no-wait")
        assert quick.exit_code == 0 and "rolled out" not in quick.output
        assert (await stored(nomad))[:2] == (4, "0.4.0")
    finally:
        await nomad.close()
