"""HealthReconciler on Nomad-native services: the real Nomad adapter (jobs and the service
catalog) against the Nomad twin, whose client runs the native checks for real, and the real
prober against a real TLS listener on the allocation's TLS port. No Consul at all.

The condition keeps its type ``ConsulHealthy`` (the status contract); its reason and message
say what was read. A Consul-provider service with no Consul configured is Unknown
(``ConsulNotConfigured``), never unhealthy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.nomad.services import NomadServices
from controller.tlsprobe import TlsProber
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.spec import parse_job_specs
from crds_equivalent.status import ConditionType, Phase
from devstack.nomad import NomadTwin
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.injection.inject import inject
from tests.support.health_world import KEY, Jobs, Statuses, mesh_status, meshed
from tests.support.mesh_trust import FixedTrust, trust_for
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually
from tests.support.x509 import Ca, issue, server_context

pytestmark = pytest.mark.timeout(60)
S = 1_000_000_000
CONFIG = MeshConfig()
SNI = f"shop.{CONFIG.domain}"
JOB = JobKey("default", "shop")


def native_job(mode: str) -> dict[str, Any]:
    """The user's job: one native service with an http check, meshed, injected as the
    controller would (the sidecar and the app are simulated by the twin's docker driver)."""
    user = {
        "ID": "shop",
        "Name": "shop",
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true", "mesh.tls.mode": mode},
        "TaskGroups": [
            {
                "Name": "web",
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": "shop",
                        "PortLabel": "http",
                        "Provider": "nomad",
                        "Checks": [
                            {
                                "Name": "health",
                                "Type": "http",
                                "Path": "/health",
                                "Interval": S,
                                "Timeout": S,
                            }
                        ],
                    }
                ],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "app"}}],
            }
        ],
    }
    return inject(user, parse_job_specs(user), CONFIG)


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


@pytest.fixture
async def client(twin: NomadTwin) -> AsyncIterator[NomadClient]:
    c = NomadClient(twin.url, retry_budget=2.0)
    try:
        yield c
    finally:
        await c.close()


async def tls_port_of(twin: NomadTwin) -> tuple[str, int]:
    def find() -> tuple[str, int] | None:
        for alloc in twin.state.allocs.values():
            if alloc["JobID"] != "shop" or alloc.get("ClientStatus") != "running":
                continue
            for port in alloc["AllocatedResources"]["Shared"]["Ports"]:
                if port["Label"] == "mesh_tls_http":
                    return str(port["HostIP"]), int(port["Value"])
        return None

    return await eventually(find, within=15, what="a running allocation with its TLS port")


async def serve_tls(host: str, port: int, tmp: Path, leaf: Ca, inter: Ca) -> web.AppRunner:
    """What the sidecar does on the TLS port: TLS with the mesh leaf, answering the check."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=server_context(tmp, leaf, [inter])).start()
    return runner


def state(statuses: Statuses) -> dict[str, tuple[str, str]]:
    assert statuses.stored is not None
    return {str(c.type): (str(c.status), c.reason) for c in statuses.stored.conditions}


@pytest.mark.parametrize(
    ("mode", "retired"), [("strict", "NoPlaintext"), ("permissive", "PermissiveTagged")]
)
async def test_a_passing_native_check_on_the_tls_port_is_healthy_without_consul(
    twin: NomadTwin, client: NomadClient, tmp_path: Path, mode: str, retired: str
) -> None:
    root = issue("Mesh Root", None, ca=True)
    inter = issue("Mesh Intermediate", root, ca=True)
    leaf = issue(SNI, inter, ca=False, sans=(SNI,))
    jobs = NomadJobs(client)
    await jobs.register_job(native_job(mode), enforce_index=None)
    statuses = Statuses(mesh_status())
    health = HealthReconciler(
        jobs,
        statuses,
        None,  # no Consul configured
        TlsProber(timeout=2),
        FixedTrust(trust_for(root, inter)),
        CONFIG,
        native=NomadServices(client),
    )
    host, port = await tls_port_of(twin)
    runner = await serve_tls(host, port, tmp_path, leaf, inter)
    try:

        async def judged() -> dict[str, tuple[str, str]] | None:
            await health.reconcile(JOB)
            got = state(statuses)
            return got if got.get("ConsulHealthy") == ("True", "AllPassing") else None

        conditions = await eventually(judged, within=15, what="the native check passes")
        assert conditions["CertValid"] == ("True", "Verified")
        assert conditions["PlaintextRetired"] == ("True", retired)
        assert statuses.stored is not None and statuses.stored.phase is Phase.READY
        # the world: Nomad's catalog holds the TLS registration, tagged, on the TLS port
        regs, _ = await NomadServices(client).registrations("shop", "default")
        tls = [r for r in regs if r.port == port]
        assert len(tls) == 1 and "mesh-tls" in tls[0].tags and tls[0].address == host
        assert len(regs) == (2 if mode == "permissive" else 1)
    finally:
        await runner.cleanup()

    async def failing() -> dict[str, tuple[str, str]] | None:
        await health.reconcile(JOB)
        got = state(statuses)
        return got if got.get("ConsulHealthy") == ("False", "ChecksFailing") else None

    await eventually(failing, within=15, what="the native check fails once nothing listens")
    stored = statuses.stored
    assert stored is not None
    healthy = stored.condition(ConditionType.CONSUL_HEALTHY)
    assert healthy is not None and "connection refused" in healthy.message


async def test_a_consul_service_without_consul_configured_is_unknown_and_says_why() -> None:
    statuses = Statuses(mesh_status())
    health = HealthReconciler(
        Jobs(meshed(), []),
        statuses,
        None,
        TlsProber(timeout=2),
        FixedTrust(trust_for(*_ca())),
        CONFIG,
    )
    await health.reconcile(KEY)
    got = state(statuses)
    assert got["ConsulHealthy"] == ("Unknown", "ConsulNotConfigured")
    assert got["PlaintextRetired"] == ("Unknown", "ConsulNotConfigured")
    assert got["CertValid"] == ("Unknown", "ConsulNotConfigured")
    stored = statuses.stored
    assert stored is not None
    healthy = stored.condition(ConditionType.CONSUL_HEALTHY)
    assert healthy is not None and "CONSUL_HTTP_ADDR" in healthy.message
    assert "service web" in healthy.message


def _ca() -> tuple[Ca, Ca]:
    root = issue("Mesh Root", None, ca=True)
    return root, issue("Mesh Intermediate", root, ca=True)
