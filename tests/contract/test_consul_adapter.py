"""Our Consul adapter against the Consul twin: health of a registered service, and the line
between "Consul says unhealthy" and "Consul did not answer"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from controller.consul.client import ConsulClient, base_url
from controller.consul.wire import ConsulUnavailable
from devstack.consul.server import ConsulTwin
from tests.support.twins import ConsulTwinFactory

pytestmark = pytest.mark.timeout(30)


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(check_runner=True, min_check_interval=0.1)


@pytest_asyncio.fixture
async def consul(twin: ConsulTwin) -> AsyncIterator[ConsulClient]:
    client = ConsulClient.from_env(
        {"CONSUL_HTTP_ADDR": twin.address, "CONSUL_HTTP_TOKEN": "t0ken"}, retry_budget=0.5
    )
    try:
        yield client
    finally:
        await client.close()


async def register(twin: ConsulTwin, service_id: str, name: str, port: int) -> None:
    """Register the way Nomad does: agent API, a TTL check standing in for the real one."""
    body = {
        "ID": service_id,
        "Name": name,
        "Address": "127.0.0.11",
        "Port": port,
        "Tags": ["mesh-tls"],
        "Checks": [{"Name": "ttl", "TTL": "30s"}],
    }
    async with aiohttp.ClientSession() as http:
        resp = await http.put(f"{twin.url}/v1/agent/service/register", json=body)
        assert resp.status == 200, await resp.text()


async def set_check(twin: ConsulTwin, check_id: str, state: str) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.put(f"{twin.url}/v1/agent/check/{state}/{check_id}")
        assert resp.status == 200, await resp.text()


async def test_health_of_a_registered_service(twin: ConsulTwin, consul: ConsulClient) -> None:
    await register(twin, "_nomad-task-a1-web-web-mesh_tls_http", "web", 24001)
    health = await consul.health_service("web")
    assert health.index >= 1
    (entry,) = health.entries
    assert (entry.service, entry.port, entry.address) == ("web", 24001, "127.0.0.11")
    assert entry.tags == ("mesh-tls",)
    assert entry.status == "critical"  # Consul answered: the service is not healthy
    assert not entry.passing
    assert (await consul.health_service("web", passing=True)).entries == ()

    await set_check(twin, "service:_nomad-task-a1-web-web-mesh_tls_http", "pass")
    (entry,) = (await consul.health_service("web", passing=True)).entries
    assert entry.passing
    assert any(c.get("CheckID") == "serfHealth" for c in entry.checks)

    await set_check(twin, "service:_nomad-task-a1-web-web-mesh_tls_http", "warn")
    assert (await consul.health_service("web")).entries[0].status == "warning"


async def test_unknown_service_is_empty_not_an_error(consul: ConsulClient) -> None:
    assert (await consul.health_service("nope")).entries == ()
    assert await consul.catalog_service("nope") == []


async def test_catalog_and_agent_self(twin: ConsulTwin, consul: ConsulClient) -> None:
    await register(twin, "web-1", "web", 24002)
    (reg,) = await consul.catalog_service("web", tag="mesh-tls")
    assert reg["ServiceID"] == "web-1"
    assert reg["ServicePort"] == 24002
    me = await consul.agent_self()
    assert me["Config"]["Datacenter"] == "dc1"


async def test_stopped_consul_is_unavailable_not_unhealthy(
    twin: ConsulTwin, consul: ConsulClient
) -> None:
    await register(twin, "web-1", "web", 24003)
    assert len((await consul.health_service("web")).entries) == 1
    # Not resumed afterwards: re-binding the same port can race other tests under xdist.
    await twin.faults.pause()
    with pytest.raises(ConsulUnavailable):
        await consul.health_service("web")


async def test_server_errors_are_unavailable(twin: ConsulTwin, consul: ConsulClient) -> None:
    twin.faults.error_ratio = 1.0
    with pytest.raises(ConsulUnavailable) as info:
        await consul.health_service("web")
    assert info.value.status == 500


def test_env_conventions() -> None:
    assert base_url("127.0.0.1:8500") == "http://127.0.0.1:8500"
    assert base_url("127.0.0.1:8501", use_ssl=True) == "https://127.0.0.1:8501"
    assert base_url("https://consul.example:8501/") == "https://consul.example:8501"
    tls = ConsulClient.from_env({"CONSUL_HTTP_ADDR": "c:8501", "CONSUL_HTTP_SSL": "true"})
    assert tls.url == "https://c:8501"
    assert tls.verifies_tls  # on unless CONSUL_HTTP_SSL_VERIFY=false
    off = ConsulClient.from_env(
        {"CONSUL_HTTP_ADDR": "c:8501", "CONSUL_HTTP_SSL": "1", "CONSUL_HTTP_SSL_VERIFY": "false"}
    )
    assert not off.verifies_tls
    with pytest.raises(ValueError, match="CONSUL_HTTP_ADDR is not set"):  # Consul is optional
        ConsulClient.from_env({"CONSUL_HTTP_SSL": "1"})
    assert "t0ken" not in repr(ConsulClient(token="t0ken"))
