"""A task with a `vault` block gets its Vault token as a Nomad 1.10 client gets it: a JWT login
at OpenBao's `jwt-nomad` with the task's `vault_default` identity (vault_hook.go
`deriveVaultTokenJWT`), written to `secrets/vault_token`, renewed, and left to lapse once the
task stops (Nomad revokes nothing). Templates render with that token; a login that fails keeps
the task from starting, with Nomad's event text."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller.vault import WORKLOAD_POLICY
from devstack.vault import OpenBao, WorkloadAuthSpec, configure_workload_identity_auth
from tests.support.executor_stack import NS, Stack, events, grant_role, running_stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def cert(job_id: str) -> str:
    """A leaf from the job's own role (granted by the test as the controller would)."""
    return (
        f'{{{{ with pkiCert "pki_int/issue/mesh.default.{job_id}" '
        f'"common_name={job_id}.service.consul" }}}}{{{{ .Cert }}}}{{{{ end }}}}'
    )


SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
async def stack(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(openbao, tmp_path / "data") as s:
        yield s


def vault_job(job_id: str, vault: dict[str, Any], templates: bool = True) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Name": "app",
        "Driver": "raw_exec",
        "Config": {"command": SLEEP[0], "args": SLEEP[1:]},
        "Vault": vault,
        "KillTimeout": NS,
    }
    if templates:
        task["Templates"] = [
            {"DestPath": "secrets/cert.pem", "EmbeddedTmpl": cert(job_id), "ChangeMode": "noop"}
        ]
    return {
        "ID": job_id,
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "RestartPolicy": {"Attempts": 0, "Mode": "fail", "Interval": 60 * NS},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                "Tasks": [task],
            }
        ],
    }


async def lookup_self(bao: OpenBao, token: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{bao.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}) as r,
    ):
        return r.status, await r.json(content_type=None)


def task_dir(stack: Stack, alloc_id: str) -> Path:
    root = Path(stack.nomad.ctx.client.alloc_root)
    return root / alloc_id / "app"


async def test_a_vault_task_logs_in_with_its_identity_and_renders_with_that_token(
    stack: Stack,
) -> None:
    # A short period: renewal must keep the token alive past it, and it lapses once stopped.
    await configure_workload_identity_auth(
        stack.bao,
        WorkloadAuthSpec(
            f"{stack.nomad.url}/.well-known/jwks.json",
            policies=(WORKLOAD_POLICY,),
            token_period="6s",
        ),
    )
    await grant_role(stack.bao, "mesh.default.wid", ("wid.service.consul",))
    await stack.register(vault_job("wid", {"Env": True}))
    alloc = await eventually(lambda: _running(stack, "wid"), within=30)
    tdir = task_dir(stack, alloc["ID"])

    secrets = tdir / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    token_file = secrets / "vault_token"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o666 & ~umask  # os.WriteFile(.., 0666)
    token = token_file.read_text()
    assert token != stack.bao.root_token
    assert (tdir / "private" / "vault_token").read_text() == token

    status, body = await lookup_self(stack.bao, token)
    assert status == 200, body
    data = body["data"]
    assert data["policies"] == ["default", WORKLOAD_POLICY]
    assert data["path"] == "auth/jwt-nomad/login"
    assert data["meta"] == {
        "role": "nomad-workloads",
        "nomad_namespace": "default",
        "nomad_job_id": "wid",
        "nomad_task": "app",
    }
    assert data["period"] == 6

    # the template rendered a certificate with this token, nothing else
    assert (tdir / "secrets" / "cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    env = _process_env(stack, alloc["ID"])
    assert env["VAULT_TOKEN"] == token

    # renewal: still valid after more than two periods
    await asyncio.sleep(14.0)
    status, body = await lookup_self(stack.bao, token)
    assert status == 200, body

    # stopped: renewal ends and the token lapses within its period (Nomad does not revoke it)
    await stack.deregister("wid")
    await eventually(lambda: _dead(stack, "wid"), within=30)
    await eventually(lambda: _lapsed(stack.bao, token), within=15)


async def test_disable_file_and_env_false_keep_the_token_out_of_the_task(stack: Stack) -> None:
    await configure_workload_identity_auth(
        stack.bao,
        WorkloadAuthSpec(f"{stack.nomad.url}/.well-known/jwks.json", policies=(WORKLOAD_POLICY,)),
    )
    await grant_role(stack.bao, "mesh.default.quiet", ("quiet.service.consul",))
    await stack.register(vault_job("quiet", {"Env": False, "DisableFile": True}))
    alloc = await eventually(lambda: _running(stack, "quiet"), within=30)
    tdir = task_dir(stack, alloc["ID"])
    assert not (tdir / "secrets" / "vault_token").exists()
    assert "VAULT_TOKEN" not in _process_env(stack, alloc["ID"])
    # the template still rendered: with the private token
    assert (tdir / "secrets" / "cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    status, _ = await lookup_self(stack.bao, (tdir / "private" / "vault_token").read_text())
    assert status == 200


async def test_a_task_whose_role_does_not_exist_never_starts(stack: Stack) -> None:
    await configure_workload_identity_auth(
        stack.bao,
        WorkloadAuthSpec(f"{stack.nomad.url}/.well-known/jwks.json", policies=(WORKLOAD_POLICY,)),
    )
    await stack.register(vault_job("norole", {"Role": "no-such-role"}))
    alloc = await eventually(lambda: _failed(stack, "norole"), within=30)
    state = alloc["TaskStates"]["app"]
    assert state["State"] == "dead" and state["Failed"] is True
    assert "Started" not in events(alloc, "app")
    killing = [e for e in state["Events"] if e["Type"] == "Killing"]
    assert killing and killing[0]["Details"].get("fails_task") == "true"
    url = f"{stack.bao.addr}/v1/auth/jwt-nomad/login"
    assert killing[0]["DisplayMessage"] == (
        "Vault: failed to derive vault token: failed to derive Vault token for identity "
        "vault_default: failed to login with JWT: Error making API request.\n\n"
        f"URL: PUT {url}\nCode: 400. Errors:\n\n"
        '* role "no-such-role" could not be found'
    )
    assert not (task_dir(stack, alloc["ID"]) / "secrets" / "vault_token").exists()


# ---- helpers ----------------------------------------------------------------------------------
async def _running(stack: Stack, job_id: str) -> dict[str, Any] | None:
    allocs = await stack.allocs(job_id)
    if allocs and (allocs[0].get("TaskStates") or {}).get("app", {}).get("State") == "running":
        return allocs[0]
    return None


async def _failed(stack: Stack, job_id: str) -> dict[str, Any] | None:
    allocs = await stack.allocs(job_id)
    return allocs[0] if allocs and allocs[0]["ClientStatus"] == "failed" else None


async def _dead(stack: Stack, job_id: str) -> bool:
    allocs = await stack.allocs(job_id)
    return bool(allocs) and all(a["ClientStatus"] == "complete" for a in allocs)


async def _lapsed(bao: OpenBao, token: str) -> bool:
    status, _ = await lookup_self(bao, token)
    return status == 403


def _process_env(stack: Stack, alloc_id: str) -> dict[str, str]:
    pid = stack.driver.pid(alloc_id, "app")
    assert pid is not None
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)
