"""`controllerctl install` against the Nomad twin (ACLs on and off) and a real OpenBao.

The CLI runs in a worker thread (click's CliRunner, the real command and its asyncio.run),
while the twin keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from click.testing import CliRunner, Result

from controller.cmd import controllerctl
from controller.deploy.install import packaged_job_file
from controller.nomad.client import NomadClient
from controller.nomad.errors import PermissionDenied
from controller.vault import VaultClient, VaultConnection
from devstack.nomad.server import NomadTwin, start_nomad_twin
from devstack.vault import OpenBao
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)

JOB_ID = "mesh-controller"
VAR_PATH = f"nomad/jobs/{JOB_ID}"


@dataclass
class Cluster:
    twin: NomadTwin
    bao: OpenBao
    nomad: NomadClient  # management token (or none without ACLs)
    vault: VaultClient  # root token

    def env(self) -> dict[str, str]:
        env = {
            "NOMAD_ADDR": self.twin.url,
            "VAULT_ADDR": self.bao.addr,
            "VAULT_TOKEN": self.bao.root_token,
            "CONSUL_HTTP_ADDR": "127.0.0.1:8500",
        }
        if self.twin.management_token:
            env["NOMAD_TOKEN"] = self.twin.management_token
        return env

    async def ctl(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return await asyncio.to_thread(
            runner.invoke, controllerctl, list(args), env=env or self.env(), catch_exceptions=False
        )

    async def variable(self) -> dict[str, Any] | None:
        try:
            return (await self.nomad.request("GET", f"/v1/var/{VAR_PATH}")).body
        except Exception:
            return None


async def _cluster(openbao: OpenBao, acl: bool) -> AsyncIterator[Cluster]:
    twin = await start_nomad_twin(nodes=3, acl=acl)
    nomad = NomadClient(twin.url, token=twin.management_token or None, retry_budget=2.0)
    vault = VaultClient(VaultConnection(addr=openbao.addr, token=openbao.root_token))
    try:
        yield Cluster(twin, openbao, nomad, vault)
    finally:
        await nomad.close()
        await twin.stop()


@pytest_asyncio.fixture
async def acl_cluster(openbao: OpenBao) -> AsyncIterator[Cluster]:
    async for cluster in _cluster(openbao, acl=True):
        yield cluster


@pytest_asyncio.fixture
async def open_cluster(openbao: OpenBao) -> AsyncIterator[Cluster]:
    async for cluster in _cluster(openbao, acl=False):
        yield cluster


async def world(c: Cluster) -> dict[str, Any]:
    """Everything an install may write, in both systems (secrets reduced to accessors)."""
    v = c.vault
    policies = await v.list("sys/policies/acl")
    nomad_state: dict[str, Any] = {
        "jobs": [
            (j["ID"], j["JobModifyIndex"]) for j in (await c.nomad.request("GET", "/v1/jobs")).body
        ],
        "vars": [
            (x["Path"], x["ModifyIndex"]) for x in (await c.nomad.request("GET", "/v1/vars")).body
        ],
    }
    if c.twin.management_token:
        acl_pols = (await c.nomad.request("GET", "/v1/acl/policies")).body
        tokens = (await c.nomad.request("GET", "/v1/acl/tokens")).body
        nomad_state["acl"] = (
            sorted((p["Name"], p["ModifyIndex"]) for p in acl_pols),
            sorted(t["AccessorID"] for t in tokens),
        )
    return {
        "mounts": sorted(((await v.read("sys/mounts")) or {}).get("data", {})),
        "auth": sorted(((await v.read("sys/auth")) or {}).get("data", {})),
        "jwt": ((await v.read("auth/jwt-nomad/config")) or {}).get("data"),
        "policies": {
            p: ((await v.read(f"sys/policies/acl/{p}")) or {})["data"]["policy"] for p in policies
        },
        "accessors": sorted(await v.list("auth/token/accessors")),
        "nomad": nomad_state,
    }


def lines(result: Result, mark: str) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(mark + " ")]


async def wait_allocs(c: Cluster, count: int) -> list[dict[str, Any]]:
    async def running() -> list[dict[str, Any]] | None:
        allocs = (await c.nomad.request("GET", f"/v1/job/{JOB_ID}/allocations")).body or []
        up = [a for a in allocs if a["ClientStatus"] == "running"]
        return up if len(up) == count else None

    found: list[dict[str, Any]] = await eventually(
        running, within=5.0, what=f"{count} running allocations"
    )
    return found


async def test_dry_run_writes_nothing_install_converges_second_run_changes_nothing(
    acl_cluster: Cluster,
) -> None:
    c = acl_cluster
    before = await world(c)
    dry = await c.ctl("install", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert lines(dry, "would") and not lines(dry, "changed")
    assert "nothing written" in dry.output
    assert await world(c) == before

    first = await c.ctl("install")
    assert first.exit_code == 0, first.output
    assert lines(first, "changed") and not lines(first, "would")
    job = (await c.nomad.request("GET", f"/v1/job/{JOB_ID}")).body
    assert job["Type"] == "system"
    allocs = await wait_allocs(c, 3)
    assert len({a["NodeID"] for a in allocs}) == 3  # one per node
    var = await c.variable()
    assert var is not None
    items = var["Items"]
    assert items["NOMAD_ADDR"] == c.twin.url and items["VAULT_ADDR"] == c.bao.addr
    assert items["MESH_CONTROLLER_NAMESPACE"] == "default" and items["MESH_NAMESPACES"] == "*"
    assert items["NOMAD_TOKEN"] not in first.output + dry.output
    # The job logs in with its workload identity (its vault block): no long-lived Vault
    # token is made or stored, only the JWT role that login names.
    assert "VAULT_TOKEN" not in items
    assert (await world(c))["accessors"] == before["accessors"]
    login = ((await c.vault.read("auth/jwt-nomad/role/mesh-controller")) or {})["data"]
    assert login["token_policies"] == ["mesh-controller"]
    assert login["bound_claims"] == {"nomad_namespace": "default", "nomad_job_id": JOB_ID}
    # `nomad setup vault`'s setup: the JWT auth method trusts this cluster's JWKS, and the
    # sidecars' role gives their identity the mesh's workload policy.
    jwt = ((await c.vault.read("auth/jwt-nomad/config")) or {})["data"]
    assert jwt["jwks_url"] == f"{c.twin.url}/.well-known/jwks.json"
    role = ((await c.vault.read("auth/jwt-nomad/role/mesh-workload")) or {})["data"]
    assert role["token_policies"] == ["mesh-workload"] and role["user_claim"] == "/sub"
    assert role["bound_audiences"] == ["vault.io"]
    after_first = await world(c)

    second = await c.ctl("install")
    assert second.exit_code == 0, second.output
    assert lines(second, "changed") == [] and lines(second, "would") == []
    assert "unchanged: all" in second.output
    assert await world(c) == after_first  # no new job version, Variable write, token or policy
    assert (await c.variable() or {})["ModifyIndex"] == var["ModifyIndex"]

    again = await c.ctl("install", "--dry-run")
    assert again.exit_code == 0 and "0 change(s) would be made" in again.output


async def test_installed_tokens_are_least_privilege(acl_cluster: Cluster) -> None:
    c = acl_cluster
    assert (await c.ctl("install")).exit_code == 0
    items = (await c.variable() or {})["Items"]
    ctl = NomadClient(c.twin.url, token=items["NOMAD_TOKEN"], retry_budget=1.0)
    try:
        assert [j["ID"] for j in (await ctl.request("GET", "/v1/jobs", namespace="*")).body] == [
            JOB_ID
        ]
        lock = await ctl.request(
            "PUT", "/v1/var/mesh-controller/probe", body={"Items": {"k": "v"}}, idempotent=False
        )
        assert lock.body["Path"] == "mesh-controller/probe"
        with pytest.raises(PermissionDenied):  # its own tokens are for the task only
            await ctl.request("GET", f"/v1/var/{VAR_PATH}")
        with pytest.raises(PermissionDenied):
            await ctl.request("GET", "/v1/acl/policies")
    finally:
        await ctl.close()


async def test_revoked_tokens_are_replaced_and_operator_items_kept(acl_cluster: Cluster) -> None:
    c = acl_cluster
    assert (await c.ctl("install")).exit_code == 0
    var = await c.variable() or {}
    old = dict(var["Items"])
    await c.nomad.request(
        "PUT",
        f"/v1/var/{VAR_PATH}",
        params={"cas": var["ModifyIndex"]},
        body={"Items": {**old, "MESH_WORKERS": "8"}},
        idempotent=False,
    )
    me = (
        await NomadClient(c.twin.url, token=old["NOMAD_TOKEN"]).request(
            "GET", "/v1/acl/token/self", namespace=None
        )
    ).body
    await c.nomad.request("DELETE", f"/v1/acl/token/{me['AccessorID']}", namespace=None)

    result = await c.ctl("install")
    assert result.exit_code == 0, result.output
    changed = "\n".join(lines(result, "changed"))
    assert "Variable" in changed and "setting NOMAD_TOKEN" in changed
    items = (await c.variable() or {})["Items"]
    assert items["MESH_WORKERS"] == "8"
    assert items["NOMAD_TOKEN"] != old["NOMAD_TOKEN"]


async def test_an_older_installs_vault_token_is_removed_and_named_by_accessor(
    acl_cluster: Cluster,
) -> None:
    """An install from before the job logged in with its identity left a long-lived
    VAULT_TOKEN in the Variable; the job never uses it (the token file wins), so it goes."""
    c = acl_cluster
    assert (await c.ctl("install")).exit_code == 0
    var = await c.variable() or {}
    created = await c.vault.write(
        "auth/token/create-orphan", {"policies": ["mesh-controller"], "period": "768h"}
    )
    assert created is not None
    dormant, accessor = created["auth"]["client_token"], created["auth"]["accessor"]
    await c.nomad.request(
        "PUT",
        f"/v1/var/{VAR_PATH}",
        params={"cas": var["ModifyIndex"]},
        body={"Items": {**var["Items"], "VAULT_TOKEN": dormant, "MESH_WORKERS": "8"}},
        idempotent=False,
    )

    result = await c.ctl("install")
    assert result.exit_code == 0, result.output
    assert dormant not in result.output
    assert f"vault token revoke -accessor {accessor}" in result.output
    assert any("removing VAULT_TOKEN" in line for line in lines(result, "changed"))
    items = (await c.variable() or {})["Items"]
    assert "VAULT_TOKEN" not in items and items["MESH_WORKERS"] == "8"
    assert items["NOMAD_TOKEN"] == var["Items"]["NOMAD_TOKEN"]

    again = await c.ctl("install")
    assert lines(again, "changed") == [], again.output


async def test_a_job_without_a_vault_block_gets_a_least_privilege_vault_token(
    acl_cluster: Cluster, tmp_path: Path
) -> None:
    """A --job-file whose tasks do not log in with their identity still needs the token."""
    c = acl_cluster
    document = json.loads(packaged_job_file().read_text())
    for group in document["Job"]["TaskGroups"]:
        for task in group["Tasks"]:
            task.pop("Vault", None)
    job_file = tmp_path / "no-vault.json"
    job_file.write_text(json.dumps(document))
    result = await c.ctl("install", "--job-file", str(job_file))
    assert result.exit_code == 0, result.output
    items = (await c.variable() or {})["Items"]
    assert items["VAULT_TOKEN"] not in result.output
    vault_ctl = VaultClient(VaultConnection(addr=c.bao.addr, token=items["VAULT_TOKEN"]))
    me = (await vault_ctl.read("auth/token/lookup-self") or {})["data"]
    assert "mesh-controller" in me["policies"] and me["orphan"] is True and me["period"] > 0
    assert await vault_ctl.read("pki_int/cert/ca_chain") is not None


async def test_without_nomad_acls_no_nomad_token_is_made(open_cluster: Cluster) -> None:
    c = open_cluster
    result = await c.ctl("install", "--namespaces", "web,api", "--env", "MESH_WORKERS=2")
    assert result.exit_code == 0, result.output
    assert "ACLs are off" in result.output
    items = (await c.variable() or {})["Items"]
    assert "NOMAD_TOKEN" not in items
    assert items["MESH_NAMESPACES"] == "web,api" and items["MESH_WORKERS"] == "2"
    await wait_allocs(c, 3)


async def test_unreachable_or_unauthorised_is_exit_2_and_says_why(acl_cluster: Cluster) -> None:
    c = acl_cluster
    before = await world(c)
    bad_nomad = await c.ctl("install", env={**c.env(), "NOMAD_TOKEN": "not-a-token"})
    assert bad_nomad.exit_code == 2 and "Nomad token" in bad_nomad.output
    assert await world(c) == before  # stopped before Vault was touched
    bad_vault = await c.ctl("install", env={**c.env(), "VAULT_TOKEN": "not-a-token"})
    assert bad_vault.exit_code == 2
    assert "Vault token is invalid or expired" in bad_vault.output
    no_token = await c.ctl("install", env={k: v for k, v in c.env().items() if k != "VAULT_TOKEN"})
    assert no_token.exit_code == 2 and "VAULT_TOKEN is not set" in no_token.output
    no_env_secret = await c.ctl("install", "--env", "VAULT_TOKEN=x")
    assert no_env_secret.exit_code == 2 and "tokens are made by install" in no_env_secret.output
    assert await c.variable() is None
