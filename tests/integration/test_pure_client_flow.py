"""The real controller in-process against the Nomad twin: a pure client (a batch-like caller that
fronts nothing) whose upstream is a meshed Nomad-native service reaches Ready on its upstream
alone, and goes back to waiting, naming the upstream, once that upstream is gone.

This harness runs no Consul and no Vault: the upstream lives in Nomad's own catalog (so its
instances are known), and with no mesh root to verify against no handshake is judged — the
edge is judged from the catalog, as the sidecar's ``nomadService`` template sees it.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from crds_equivalent.status import ConditionType, Phase
from devstack.nomad import NomadTwin
from devstack.testing import User, running, settings_for, user_job
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=2, heartbeat_interval=0.2)


def native_server(job_id: str) -> dict[str, Any]:
    """A meshed service in Nomad's own catalog, without checks (no Consul judges it here)."""
    job = user_job(job_id, {"mesh.tls": "true"})
    for service in job["TaskGroups"][0]["Services"]:
        service["Provider"] = "nomad"
        service.pop("Checks", None)
    return job


def pure_client(job_id: str, upstreams: str) -> dict[str, Any]:
    job = user_job(job_id, {"mesh.tls": "true", "mesh.tls.upstreams": upstreams})
    group = job["TaskGroups"][0]
    group.pop("Services")
    group["Networks"] = [{"Mode": "bridge"}]
    return job


async def test_a_pure_client_is_ready_on_its_upstream_and_waits_when_it_is_gone(
    twin: NomadTwin, user: User
) -> None:
    settings = settings_for(twin, MESH_HEALTH_INTERVAL="200ms")
    async with running(settings) as (app, _):
        await user.submit(native_server("ledger"))
        await user.submit(pure_client("report", "ledger:9101@nomad"))

        async def ready() -> bool:
            status = await app.statuses.get("default", "report")
            return status is not None and status.phase is Phase.READY

        await eventually(ready, within=30, what="the pure client Ready")
        status = await app.statuses.get("default", "report")
        assert status is not None and status.message == ""
        [edge] = status.edges
        assert (edge.group, edge.service, edge.port, edge.provider, edge.state) == (
            "app",
            "ledger",
            9101,
            "nomad",
            "healthy",
        )
        assert edge.healthy is not None and edge.healthy >= 1
        consul = status.condition(ConditionType.CONSUL_HEALTHY)
        assert consul is not None and consul.reason == "PureClient"

        await user.client.request("DELETE", "/v1/job/ledger")  # stop it: its instances go

        async def degraded() -> bool:
            status = await app.statuses.get("default", "report")
            return status is not None and status.phase is Phase.DEGRADED

        await eventually(degraded, within=30, what="the pure client Degraded, its upstream gone")
        status = await app.statuses.get("default", "report")
        assert status is not None and status.edges[0].state == "empty"
        assert status.message.startswith('group "app": upstream ledger:9101/http: no healthy')
