"""`controller run` as a real process against the Nomad twin: it leads, meshes a job, answers
its probes, and on SIGTERM drains, releases the leader lock and exits 0. Bad settings exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from controller.vault import CONTROLLER_POLICY, VaultClient, VaultConnection, bootstrap_pki
from crds_equivalent.keys import VAR_LEADER
from devstack.nomad import NomadTwin
from devstack.testing import User, injected, stored, user_job
from devstack.vault import OpenBao
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

CONTROLLER = str(Path(sys.executable).with_name("controller"))


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1, heartbeat_interval=0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def http_status(url: str) -> int | None:
    try:
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            return r.status
    except aiohttp.ClientError:
        return None


def lock_held(twin: NomadTwin) -> bool:
    var = twin.state.variables.get(("default", VAR_LEADER))
    return bool(var and var.get("Lock"))


async def test_run_serves_meshes_and_stops_cleanly_on_sigterm(
    twin: NomadTwin, openbao: OpenBao
) -> None:
    port = free_port()
    # Meshing grants the job its PKI role in Vault before the register: the controller gets
    # the mesh PKI and a token with its own policy.
    vault = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    await bootstrap_pki(vault)
    made = await vault.write("auth/token/create", {"policies": [CONTROLLER_POLICY], "ttl": "1h"})
    env = {
        **os.environ,
        "NOMAD_ADDR": twin.url,
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": (made or {})["auth"]["client_token"],
        "MESH_HTTP_ADDR": f"127.0.0.1:{port}",
        "MESH_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        CONTROLLER,
        "run",
        "--workers",
        "2",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    user = User(twin)
    try:
        base = f"http://127.0.0.1:{port}"
        await eventually(lambda: _is(http_status(base + "/readyz"), 200), within=20, what="ready")
        assert lock_held(twin)
        await user.submit(user_job("web", {"mesh.tls": "true"}))
        await eventually(lambda: injected(stored(twin, "web")), what="web injected")
        role = await vault.read("pki_int/roles/mesh.default.web")
        assert role is not None  # granted before the register
        assert sorted(role["data"]["allowed_domains"]) == [
            "web.service.*.consul",
            "web.service.consul",
        ]
        assert await http_status(base + "/healthz") == 200

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert not lock_held(twin)  # released, so a standby need not wait out the TTL
    finally:
        await user.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_bad_settings_exit_2() -> None:
    proc = await asyncio.create_subprocess_exec(
        CONTROLLER,
        "run",
        env={**os.environ, "MESH_WORKERS": "0"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"MESH_WORKERS" in err


async def _is(value: object, expected: object) -> bool:
    assert asyncio.iscoroutine(value)
    return bool(await value == expected)
