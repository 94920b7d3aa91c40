"""A pure client's upstream through the real Consul adapter against the Consul twin and the real
prober against real TLS listeners: healthy, one instance serving a chain the mesh does not
trust (its handshake error recorded), every instance failing, empty, then Consul gone
(unknown, never empty)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from controller.consul.client import ConsulClient
from controller.tlsprobe import TlsProber
from crds_equivalent.spec import parse_job_specs
from crds_equivalent.status import Phase
from devstack.consul.server import ConsulTwin
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.injection.inject import inject
from tests.support.health_world import ALLOCS, CONFIG, Jobs, Statuses, mesh_status
from tests.support.mesh_trust import FixedTrust, trust_for
from tests.support.twins import ConsulTwinFactory
from tests.support.x509 import issue, server_context, serving

pytestmark = pytest.mark.timeout(60)
SNI = "billing.service.consul"
KEY = ("default", "report")


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(check_runner=False)


def pure_client() -> dict[str, Any]:
    user = {
        "ID": "report",
        "Name": "report",
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true", "mesh.tls.upstreams": "billing:9001"},
        "TaskGroups": [
            {
                "Name": "run",
                "Networks": [{"Mode": "bridge"}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "r"}}],
            }
        ],
    }
    job = inject(user, parse_job_specs(user), CONFIG)
    job["JobModifyIndex"] = 42
    return job


async def agent(twin: ConsulTwin, method: str, path: str, body: object = None) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.request(method, f"{twin.url}/v1/agent/{path}", json=body)
        assert resp.status == 200, await resp.text()


async def register(twin: ConsulTwin, sid: str, port: int) -> None:
    body = {
        "ID": sid,
        "Name": "billing",
        "Address": "127.0.0.1",
        "Port": port,
        "Tags": ["mesh-tls"],
        "Checks": [{"Name": "alive", "TTL": "60s"}],
    }
    await agent(twin, "PUT", "service/register", body)
    await agent(twin, "PUT", f"check/pass/service:{sid}")


async def test_a_pure_clients_upstream_through_the_twin_and_real_tls(
    twin: ConsulTwin, tmp_path: Path
) -> None:
    root = issue("Mesh Root", None, ca=True)
    inter = issue("Mesh Intermediate", root, ca=True)
    rogue = issue("Rogue CA", None, ca=True)
    good_leaf = issue(SNI, inter, ca=False, sans=(SNI,))
    bad_leaf = issue(SNI, rogue, ca=False, sans=(SNI,))
    statuses = Statuses(mesh_status())
    consul = ConsulClient.from_env({"CONSUL_HTTP_ADDR": twin.address}, retry_budget=0.2)
    health = HealthReconciler(
        Jobs(pure_client(), ALLOCS),
        statuses,
        consul,
        TlsProber(timeout=2),
        FixedTrust(trust_for(root, inter)),
        CONFIG,
        interval=0.0,  # every pass probes again
        registry=CollectorRegistry(),
    )

    def edge() -> tuple[str, int | None, str]:
        assert statuses.stored is not None
        [record] = statuses.stored.edges
        return record.state, record.healthy, record.handshake_error

    try:
        async with (
            serving(server_context(tmp_path, good_leaf, [inter])) as good,
            serving(server_context(tmp_path, bad_leaf, [rogue])) as bad,
        ):
            await register(twin, "billing-good", good)
            await health.reconcile(KEY)
            assert edge() == ("healthy", 1, "")
            assert statuses.stored is not None and statuses.stored.phase is Phase.READY

            await register(twin, "billing-rogue", bad)
            await health.reconcile(KEY)
            state, healthy, error = edge()
            assert (state, healthy) == ("healthy", 1)
            assert error.startswith(f"127.0.0.1:{bad} ({SNI}): ")

            await agent(twin, "PUT", "service/deregister/billing-good")
            await health.reconcile(KEY)
            assert edge()[:2] == ("handshake failed", 0)
            assert statuses.stored.phase is Phase.DEGRADED  # verified Ready before: a fault

            await agent(twin, "PUT", "service/deregister/billing-rogue")
            await health.reconcile(KEY)
            assert edge() == ("empty", 0, "")
            assert "no healthy mesh-tls instance in consul (none registered)" in (
                statuses.stored.message
            )

        await twin.stop()
        await health.reconcile(KEY)
        state, healthy, _ = edge()
        assert (state, healthy) == ("unknown", None)
        # nothing can be told now: the job keeps the phase it had (Degraded: the edge was empty)
        assert statuses.stored.phase is Phase.DEGRADED
        assert statuses.stored.message.startswith("degraded when last seen; cannot tell now: ")
    finally:
        await consul.close()
