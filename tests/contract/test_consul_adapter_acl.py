"""Our Consul adapter against the ACL-enforcing Consul twin (audit §11): a filtered answer is
reported as filtered — from ``X-Consul-Results-Filtered-By-ACLs`` for a token, from the probe of
the servers' own ``consul`` service for the anonymous token, which Consul never tells — and an
empty answer that was not filtered stays an empty answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import pytest_asyncio

from controller.consul.client import ANONYMOUS_BLIND, FILTERED_BY_HEADER, ConsulClient
from controller.consul.wire import ConsulPermissionDenied
from devstack.consul.acl import ConsulAcl, Token
from devstack.consul.server import ConsulTwin
from tests.support.twins import ConsulTwinFactory

pytestmark = pytest.mark.timeout(30)

READ_ALL = {"service_prefix": {"": "read"}, "node_prefix": {"": "read"}}
TOKENS = {
    "mgmt": Token("11111111-0000-0000-0000-000000000001", management=True),
    "reader": Token("22222222-0000-0000-0000-000000000002", dict(READ_ALL)),
    # service read but no node read: health and node listings are filtered, the service list not
    "nodeless": Token("33333333-0000-0000-0000-000000000003", {"service_prefix": {"": "read"}}),
    "blind": Token("44444444-0000-0000-0000-000000000004", {"service": {"other": "read"}}),
}
WEB_ID = "_nomad-task-a1-group-web-web-mesh_tls_http"

Client = Callable[..., ConsulClient]


@pytest_asyncio.fixture
async def acl() -> ConsulAcl:
    return ConsulAcl(tokens=dict(TOKENS))


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory, acl: ConsulAcl) -> ConsulTwin:
    twin = await make_consul_twin(check_runner=False, acl=acl)
    body = {"ID": WEB_ID, "Name": "web", "Address": "127.0.0.11", "Port": 24001}
    async with aiohttp.ClientSession(headers={"X-Consul-Token": "mgmt"}) as http:
        resp = await http.put(f"{twin.url}/v1/agent/service/register", json=body)
        assert resp.status == 200, await resp.text()
    return twin


@pytest_asyncio.fixture
async def client(twin: ConsulTwin) -> AsyncIterator[Client]:
    made: list[ConsulClient] = []

    def make(token: str | None = None, **kwargs: float) -> ConsulClient:
        env = {"CONSUL_HTTP_ADDR": twin.address}
        if token is not None:
            env["CONSUL_HTTP_TOKEN"] = token
        made.append(ConsulClient.from_env(env, retry_budget=0.2, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for c in made:
            await c.close()


async def test_a_token_that_may_read_sees_everything_unfiltered(client: Client) -> None:
    health = await client("reader").health_service("web")
    assert [e.service_id for e in health.entries] == [WEB_ID]
    assert (health.filtered, health.filtered_why) == (False, "")
    services, nodes = (
        await client("reader").catalog_services(),
        await client("reader").catalog_nodes(),
    )
    assert set(services.body) == {"consul", "web"} and not services.filtered
    assert [n["Node"] for n in nodes.body] == ["devstack"] and not nodes.filtered


async def test_a_token_without_read_gets_an_empty_answer_flagged_filtered(
    client: Client,
) -> None:
    blind = client("blind")
    health = await blind.health_service("web")
    assert (health.entries, health.filtered, health.filtered_why) == ((), True, FILTERED_BY_HEADER)
    services = await blind.catalog_services()
    assert (services.body, services.filtered) == ({}, True)
    nodes = await blind.catalog_nodes()
    assert (nodes.body, nodes.filtered) == ([], True)


async def test_node_read_is_needed_for_health_not_for_the_service_list(client: Client) -> None:
    nodeless = client("nodeless")
    health = await nodeless.health_service("web")
    assert (health.entries, health.filtered) == ((), True)
    services = await nodeless.catalog_services()
    assert set(services.body) == {"consul", "web"} and not services.filtered
    assert (await nodeless.catalog_nodes()).filtered


async def test_an_unknown_service_for_a_reader_is_empty_and_not_filtered(client: Client) -> None:
    health = await client("reader").health_service("nope")
    assert (health.entries, health.filtered) == ((), False)


async def test_the_anonymous_token_is_never_told_so_the_servers_probe_tells(
    client: Client, acl: ConsulAcl
) -> None:
    anonymous = client(None, visibility_ttl=60.0)
    assert anonymous.anonymous
    health = await anonymous.health_service("web")
    assert (health.entries, health.filtered, health.filtered_why) == ((), True, ANONYMOUS_BLIND)
    # The probe's answer is kept for visibility_ttl: granting read now is not seen yet ...
    acl.anonymous.rules = dict(READ_ALL)
    assert (await anonymous.health_service("nope")).filtered
    # ... by this client; a client that asks afresh sees the grant, and an empty answer is empty.
    fresh = client(None, visibility_ttl=0.0)
    assert [e.service_id for e in (await fresh.health_service("web")).entries] == [WEB_ID]
    nope = await fresh.health_service("nope")
    assert (nope.entries, nope.filtered) == ((), False)


async def test_an_unknown_token_is_refused_not_filtered(client: Client) -> None:
    with pytest.raises(ConsulPermissionDenied, match="403 ACL not found"):
        await client("forged").health_service("web")


async def test_without_acls_an_anonymous_empty_answer_is_empty(
    make_consul_twin: ConsulTwinFactory,
) -> None:
    twin = await make_consul_twin(check_runner=False)
    consul = ConsulClient(twin.address, retry_budget=0.2)
    try:
        health = await consul.health_service("nope")
        assert (health.entries, health.filtered) == ((), False)
        assert await consul.anonymous_is_blind() is False
    finally:
        await consul.close()
