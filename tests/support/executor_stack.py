"""The executor stack: a Nomad twin with the raw_exec driver, the Consul twin behind the
registrar, and the real OpenBao with the mesh PKI. Shared by the executor's own tests
(tests/twins/integration), the executor TLS test and the e2e certificate tests.

Also the process-table guard: every test records which processes exist that belong to it
(descendants of this pytest process, or anything carrying one of the stack's alloc IDs in its
environment) and asserts none is left afterwards.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from controller.vault import (
    WORKLOAD_POLICY,
    VaultClient,
    VaultConnection,
    bootstrap_pki,
    pki_layout,
    root_pem,
)
from controller.vault.grants import VaultCertGrants
from crds_equivalent.config import MeshConfig
from devstack.consul import ConsulTwin, start_consul_twin
from devstack.executor import ExecutorSettings, RawExecDriver, RetryPolicy
from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.registrar import ConsulRegistrar
from devstack.vault import OpenBao, WorkloadAuthSpec, configure_workload_identity_auth
from reconcilers.injection.grant import Grant
from reconcilers.injection.plan import Apply, NoOp, plan_job

NS = 1_000_000_000
NGINX = "/usr/sbin/nginx"

# A tiny HTTP app: binds NOMAD_IP_http:NOMAD_PORT_http, answers its pid, and counts SIGHUPs.
APP = r"""
import http.server, os, signal
hups = 0
def on_hup(*_):
    global hups
    hups += 1
signal.signal(signal.SIGHUP, on_hup)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"pid={os.getpid()} hups={hups} task={os.environ['NOMAD_TASK_NAME']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
addr = (os.environ["NOMAD_IP_http"], int(os.environ["NOMAD_PORT_http"]))
http.server.ThreadingHTTPServer(addr, H).serve_forever()
"""


@dataclass
class Stack:
    nomad: NomadTwin
    consul: ConsulTwin
    driver: RawExecDriver
    registrar: ConsulRegistrar
    bao: OpenBao
    http: aiohttp.ClientSession
    root_ca: str

    async def register(self, job: dict[str, Any]) -> None:
        async with self.http.post(f"{self.nomad.url}/v1/jobs", json={"Job": job}) as r:
            assert r.status == 200, await r.text()

    async def deregister(self, job_id: str) -> None:
        async with self.http.delete(f"{self.nomad.url}/v1/job/{job_id}") as r:
            assert r.status == 200, await r.text()

    async def allocs(self, job_id: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.nomad.url}/v1/job/{job_id}/allocations") as r:
            stubs = await r.json()
        out = []
        for stub in stubs:
            async with self.http.get(f"{self.nomad.url}/v1/allocation/{stub['ID']}") as r:
                out.append(await r.json())
        return out

    async def alloc(self, job_id: str) -> dict[str, Any]:
        allocs = await self.allocs(job_id)
        assert len(allocs) == 1, allocs
        return allocs[0]

    async def client_op(self, alloc_id: str, op: str, body: dict[str, Any]) -> int:
        url = f"{self.nomad.url}/v1/client/allocation/{alloc_id}/{op}"
        async with self.http.post(url, json=body) as r:
            return r.status

    async def health(self, service: str) -> list[dict[str, Any]]:
        async with self.http.get(f"http://{self.consul.address}/v1/health/service/{service}") as r:
            result: list[dict[str, Any]] = await r.json()
            return result

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.root_ca)


async def start_stack(bao: OpenBao, data_dir: Path, http: aiohttp.ClientSession) -> Stack:
    async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as admin:
        await bootstrap_pki(admin)
        root = await root_pem(admin, "pki")
    consul = await start_consul_twin(min_check_interval=0.2)
    registrar = ConsulRegistrar(consul.address, retry_interval=0.2)
    driver = RawExecDriver(
        ExecutorSettings(
            consul_addr=consul.address,
            template_retry=RetryPolicy(attempts=200, backoff=0.2, max_backoff=0.5),
            template_event_interval=0.5,
        )
    )
    nomad = await start_nomad_twin(
        nodes=2,
        vault_addr=bao.addr,
        alloc_hooks=registrar,
        drivers={"raw_exec": driver},
        data_dir=str(data_dir),
    )
    # Tasks log in with their vault_default identity, as on a cluster set up by
    # `nomad setup vault`: the role grants the mesh's workload policy, never root.
    await configure_workload_identity_auth(
        bao,
        WorkloadAuthSpec(f"{nomad.url}/.well-known/jwks.json", policies=(WORKLOAD_POLICY,)),
    )
    return Stack(nomad, consul, driver, registrar, bao, http, root)


async def stop_stack(stack: Stack) -> None:
    await stack.nomad.stop()
    await stack.driver.close()
    await stack.registrar.close()
    await stack.consul.stop()


async def grant_role(
    bao: OpenBao, role: str, names: tuple[str, ...], config: MeshConfig | None = None
) -> None:
    """What the controller does before it registers a meshed job: its per-job PKI role."""
    async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as client:
        await VaultCertGrants(client, pki_layout(config or MeshConfig())).grant(role, names)


async def grant_job(bao: OpenBao, job: dict[str, Any], config: MeshConfig) -> Grant:
    """The per-job role of a meshed job (user or injected), granted as the controller does."""
    decision = plan_job(job, config)
    assert isinstance(decision, Apply | NoOp) and decision.grant is not None, decision
    await grant_role(bao, decision.grant.role, decision.grant.names, config)
    return decision.grant


def events(alloc: dict[str, Any], task: str) -> list[str]:
    return [e["Type"] for e in alloc["TaskStates"][task]["Events"]]


def app_task(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "Driver": "raw_exec",
        "Config": {"command": sys.executable, "args": ["-u", "-c", APP]},
        "KillTimeout": 2 * NS,
        **extra,
    }


def our_processes(alloc_ids: set[str] | None = None) -> set[int]:
    """Descendants of this test process, plus processes carrying one of `alloc_ids`."""
    me = psutil.Process(os.getpid())
    found = {p.pid for p in me.children(recursive=True) if _alive(p)}
    if alloc_ids:
        for proc in psutil.process_iter(["pid"]):
            try:
                env = proc.environ()
            except (psutil.Error, OSError):
                continue
            if env.get("NOMAD_ALLOC_ID") in alloc_ids and _alive(proc):
                found.add(proc.pid)
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@asynccontextmanager
async def running_stack(bao: OpenBao, data_dir: Path) -> AsyncIterator[Stack]:
    """A started stack that, once stopped, must have left no process of ours behind."""
    before = our_processes()
    alloc_ids: set[str] = set()
    async with aiohttp.ClientSession() as http:
        s = await start_stack(bao, data_dir, http)
        try:
            yield s
        finally:
            alloc_ids = set(s.nomad.state.allocs)
            await stop_stack(s)
    left = our_processes(alloc_ids) - before
    assert not left, [psutil.Process(p).cmdline() for p in left if psutil.pid_exists(p)]
