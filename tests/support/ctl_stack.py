"""A small world for the operator commands: Nomad + Consul twins (Nomad registers services in
Consul through the devstack registrar), the session's real OpenBao with a PKI in mounts of our
own (``ctl_pki``/``ctl_pki_int``, so other tests' issuers are untouched), and a way to run the
real ``controllerctl`` CLI in a thread while the twins serve from the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner, Result

from controller.cmd import controllerctl
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.vault import PkiLayout, VaultClient, VaultConnection, bootstrap_pki
from controller.vault.workload_auth import WorkloadAuth
from crds_equivalent.config import MeshConfig
from devstack.consul import ConsulTwin, start_consul_twin
from devstack.consul.acl import ConsulAcl
from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.registrar import ConsulRegistrar
from devstack.vault import OpenBao
from reconcilers.injection.plan import Apply, plan_job
from tests.support.waiting import eventually

ROOT_MOUNT = "ctl_pki"
INT_MOUNT = "ctl_pki_int"
LAYOUT = PkiLayout(root_mount=ROOT_MOUNT, int_mount=INT_MOUNT)
CONFIG = MeshConfig(root_mount=ROOT_MOUNT, pki_mount=INT_MOUNT)
# Every setting the commands read, so nothing leaks in from the test process's environment.
UNSET = (
    "NOMAD_TOKEN",
    "NOMAD_NAMESPACE",
    "NOMAD_REGION",
    "NOMAD_CACERT",
    "NOMAD_SKIP_VERIFY",
    "CONSUL_HTTP_TOKEN",
    "CONSUL_HTTP_SSL",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_SKIP_VERIFY",
    "MESH_STATUS_URL",
    "MESH_NAMESPACES",
    "MESH_CONTROLLER_NAMESPACE",
)


def job(job_id: str, meta: dict[str, str] | None, count: int = 2) -> dict[str, Any]:
    """A service job as a user writes it; the twin simulates its docker tasks."""
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": meta,
        "TaskGroups": [
            {
                "Name": "app",
                "Count": count,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": job_id, "PortLabel": "http", "Provider": "consul"}],
                "Tasks": [
                    {
                        "Name": "app",
                        "Driver": "docker",
                        "Config": {"image": f"example/{job_id}:1"},
                        "Resources": {"CPU": 50, "MemoryMB": 32},
                    }
                ],
            }
        ],
    }


def injected(job_id: str, count: int = 2) -> dict[str, Any]:
    decision = plan_job(job(job_id, {"mesh.tls": "true"}, count), CONFIG)
    assert isinstance(decision, Apply)
    return decision.job


@dataclass
class Stack:
    nomad: NomadTwin
    consul: ConsulTwin
    bao: OpenBao
    client: NomadClient

    @property
    def jobs(self) -> NomadJobs:
        return NomadJobs(self.client)

    @property
    def vault(self) -> VaultClient:
        return VaultClient(VaultConnection(self.bao.addr, self.bao.root_token))

    def env(self, **extra: str | None) -> dict[str, str | None]:
        values: dict[str, str | None] = dict.fromkeys(UNSET)
        values |= {
            "NOMAD_ADDR": self.nomad.url,
            "CONSUL_HTTP_ADDR": self.consul.address,
            "VAULT_ADDR": self.bao.addr,
            "VAULT_TOKEN": self.bao.root_token,
            "MESH_ROOT_MOUNT": ROOT_MOUNT,
            "MESH_PKI_MOUNT": INT_MOUNT,
        }
        return values | extra

    async def ctl(self, *args: str, **env: str | None) -> Result:
        """Run ``controllerctl ARGS`` for real (its own event loop, in a thread)."""
        runner = CliRunner()
        return await asyncio.to_thread(
            runner.invoke, controllerctl, list(args), env=self.env(**env), catch_exceptions=False
        )


@contextlib.asynccontextmanager
async def stack(
    bao: OpenBao,
    *,
    heartbeat: float = 30.0,
    consul_acl: ConsulAcl | None = None,
    registrar_token: str | None = None,
) -> AsyncIterator[Stack]:
    """``consul_acl`` turns Consul's ACLs on; Nomad's registrar then registers with
    ``registrar_token``, as a Nomad client does with its own Consul token."""
    consul = await start_consul_twin(min_check_interval=0.05, acl=consul_acl)
    registrar = ConsulRegistrar(consul.address, token=registrar_token)
    nomad = await start_nomad_twin(nodes=2, alloc_hooks=registrar, heartbeat_interval=heartbeat)
    client = NomadClient(nomad.url, retry_budget=0.5)
    try:
        # As `bootstrap-pki --jwks-url`: the JWT method trusts this Nomad's identities.
        async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as admin:
            await bootstrap_pki(
                admin,
                LAYOUT,
                workload_auth=WorkloadAuth(jwks_url=f"{nomad.url}/.well-known/jwks.json"),
            )
        yield Stack(nomad, consul, bao, client)
    finally:
        await client.close()
        await nomad.stop()
        await registrar.close()
        await consul.stop()


async def running_with_tls(s: Stack, job_id: str, count: int = 2) -> Mapping[str, Any]:
    """Register the injected job and wait until every allocation runs and is in Consul."""
    await s.jobs.register_job(injected(job_id, count), enforce_index=0)

    async def ready() -> bool:
        allocs = await s.jobs.job_allocations(job_id, "default")
        running = [a for a in allocs if a["ClientStatus"] == "running"]
        return len(running) == count and len(s.consul.state.services_named(job_id)) == count

    await eventually(ready, what=f"{job_id} running and registered", within=15.0)
    stored = await s.jobs.get_job(job_id, "default")
    assert stored is not None
    return stored
