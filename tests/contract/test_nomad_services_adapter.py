"""Our Nomad service-catalog adapter (controller/nomad/services.py) against the Nomad twin.

Pinned to Nomad's source: ``GET /v1/service/:name`` (service_registration_endpoint.go,
``serviceGetRequest``: ``[]`` for an unknown name), ``GET /v1/client/allocation/:id/checks``
(client/alloc_endpoint.go ``Allocations.Checks``: results keyed by ``structs.NomadCheckID``), and
``MakeAllocServiceID``. Two registrations of one name on two ports (the permissive shape) must each
get only their own check results, which is the point of computing the check IDs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from controller.nomad.client import NomadClient
from controller.nomad.errors import PermissionDenied
from controller.nomad.services import NativeServiceHealth, NomadServices, nomad_check_ids
from devstack.nomad import NomadTwin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)
S = 1_000_000_000


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


@pytest.fixture
async def up_port(twin: NomadTwin) -> AsyncIterator[int]:
    """A real HTTP endpoint on the node's address: the "up" port the checks reach."""

    async def fine(_: web.Request) -> web.Response:
        return web.Response(text="fine")

    app = web.Application()
    app.router.add_get("/health", fine)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, twin.nodes[0].address, 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.fixture
async def services(twin: NomadTwin) -> AsyncIterator[NomadServices]:
    client = NomadClient(twin.url, retry_budget=2.0)
    try:
        yield NomadServices(client)
    finally:
        await client.close()


def http_check(name: str, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Type": "http", "Path": "/health", "Interval": S, "Timeout": S, **extra}


def two_ports_job(up: int) -> dict[str, Any]:
    """One name registered on an answering port and on a dead one, with identical checks except
    the port: the permissive shape (plaintext and TLS registrations of one service)."""
    return {
        "ID": "shop",
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "web",
                "Networks": [
                    {
                        "ReservedPorts": [{"Label": "up", "Value": up}],
                        "DynamicPorts": [{"Label": "down"}],
                    }
                ],
                "Services": [
                    {
                        "Name": "shop",
                        "PortLabel": "up",
                        "Tags": ["plain"],
                        "Provider": "nomad",
                        "Checks": [http_check("h", PortLabel="up")],
                    },
                    {
                        "Name": "shop",
                        "PortLabel": "down",
                        "Tags": ["tls"],
                        "Provider": "nomad",
                        "Checks": [http_check("h", PortLabel="down")],
                    },
                ],
                "Tasks": [{"Name": "srv", "Driver": "docker", "Config": {"image": "x"}}],
            }
        ],
    }


async def test_each_registration_gets_its_own_check_results(
    twin: NomadTwin, services: NomadServices, up_port: int
) -> None:
    await services.client.request("POST", "/v1/jobs", body={"Job": two_ports_job(up_port)})

    async def settled() -> NativeServiceHealth | None:
        got = await services.service_health("shop", "default")
        ran = [c for i in got.instances for c in i.checks if c.status != "pending"]
        return got if len(got.instances) == 2 and len(ran) == 2 else None

    health = await eventually(settled, within=15, what="both registrations checked")
    by_tag = {i.registration.tags: i for i in health.instances}
    up, down = by_tag[("plain",)], by_tag[("tls",)]
    alloc = next(a for a in twin.state.allocs.values() if a["JobID"] == "shop")
    assert {up.registration.alloc_id, down.registration.alloc_id} == {alloc["ID"]}
    assert up.registration.id == f"_nomad-task-{alloc['ID']}-group-web-shop-up"
    assert down.registration.id == f"_nomad-task-{alloc['ID']}-group-web-shop-down"
    assert up.registration.port == up_port and up.registration.address == twin.nodes[0].address
    assert up.registration.node_id == alloc["NodeID"]
    assert up.registration.namespace == "default" and up.registration.job_id == "shop"
    # the same check name on both: only the ID (which hashes the port label) tells them apart
    assert [(c.name, c.status) for c in up.checks] == [("h", "success")]
    assert [(c.name, c.status) for c in down.checks] == [("h", "failure")]
    assert up.checks[0].result is not None and up.checks[0].result.output == "nomad: http ok"
    assert down.checks[0].result is not None and "connection refused" in (
        down.checks[0].result.output
    )
    # the ID the twin keys the result by is Nomad's md5 NomadCheckID (1.10.5)
    job = twin.state.jobs[("default", "shop")]
    canon = job["TaskGroups"][0]["Services"][0]["Checks"][0]
    assert up.checks[0].result.id == nomad_check_ids(alloc["ID"], "web", canon)[0]


async def test_unknown_service_and_allocation_are_empty_not_errors(
    services: NomadServices,
) -> None:
    health = await services.service_health("nothing-here", "default")
    assert health.instances == ()
    assert await services.allocation_checks("6e1c9d4b-0000-4000-8000-000000000000", "default") == {}


async def test_a_token_without_read_job_is_refused(make_nomad_twin: NomadTwinFactory) -> None:
    twin = await make_nomad_twin(nodes=1, acl=True)
    client = NomadClient(twin.url, token="00000000-0000-4000-8000-00000000dead", retry_budget=0.5)
    try:
        with pytest.raises(PermissionDenied):
            await NomadServices(client).service_health("shop", "default")
    finally:
        await client.close()
