"""The Consul twin against py-consul, an independent client: agent, catalog and health."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import consul
import consul.aio
import pytest
import pytest_asyncio

from devstack.consul import ConsulTwin
from tests.support.twins import ConsulTwinFactory

pytestmark = pytest.mark.timeout(30)
T = TypeVar("T")


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(check_runner=False)


def client(twin: ConsulTwin) -> consul.Consul:
    host, port = twin.address.split(":")
    return consul.Consul(host=host, port=int(port))


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """py-consul's standard client is blocking; the twin shares this loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_register_lists_the_service_with_consul_defaults(twin: ConsulTwin) -> None:
    c = client(twin)
    check = consul.Check.http("http://127.0.0.1:9/health", "10s", timeout="2s")
    ok = await call(
        c.agent.service.register,
        "web",
        service_id="web-1",
        address="127.0.0.1",
        port=8443,
        tags=["v1"],
        meta={"version": "1.2"},
        check=check,
    )
    assert ok is True
    services = await call(c.agent.services)
    assert services == {
        "web-1": {
            "ID": "web-1",
            "Service": "web",
            "Tags": ["v1"],
            "Meta": {"version": "1.2"},
            "Port": 8443,
            "Address": "127.0.0.1",
            "TaggedAddresses": {
                "lan_ipv4": {"Address": "127.0.0.1", "Port": 8443},
                "wan_ipv4": {"Address": "127.0.0.1", "Port": 8443},
            },
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "Datacenter": "dc1",
        }
    }
    checks = await call(c.agent.checks)
    assert list(checks) == ["service:web-1"]
    chk = checks["service:web-1"]
    assert chk["Name"] == "Service 'web' check"
    assert chk["Status"] == "critical"
    assert (chk["Type"], chk["Interval"], chk["Timeout"]) == ("http", "10s", "2s")
    assert (chk["CreateIndex"], chk["ModifyIndex"]) == (0, 0)


async def test_service_id_defaults_to_name_and_checks_are_numbered(twin: ConsulTwin) -> None:
    c = client(twin)
    await call(
        c.agent.service.register,
        "api",
        port=80,
        check=consul.Check.tcp("127.0.0.1", 80, "5s"),
        extra_checks=[consul.Check.ttl("30s")],
    )
    assert "api" in await call(c.agent.services)
    checks = await call(c.agent.checks)
    assert sorted(checks) == ["service:api:1", "service:api:2"]
    assert {checks[k]["Type"] for k in checks} == {"tcp", "ttl"}


async def test_deregister_removes_service_and_checks_and_unknown_id_is_false(
    twin: ConsulTwin,
) -> None:
    c = client(twin)
    await call(c.agent.service.register, "web", service_id="w1", check=consul.Check.ttl("5s"))
    assert await call(c.agent.service.deregister, "w1") is True
    assert await call(c.agent.services) == {}
    assert await call(c.agent.checks) == {}
    assert await call(c.agent.service.deregister, "w1") is False


async def test_replace_existing_checks_drops_checks_not_in_the_request(twin: ConsulTwin) -> None:
    c = client(twin)
    a = {**consul.Check.ttl("30s"), "CheckID": "a"}
    b = {**consul.Check.ttl("30s"), "CheckID": "b"}
    await call(c.agent.service.register, "web", check=a, extra_checks=[b])
    await call(c.agent.service.register, "web", check=a)
    assert sorted(await call(c.agent.checks)) == ["a", "b"]
    await call(c.agent.service.register, "web", check=a, replace_existing_checks=True)
    assert sorted(await call(c.agent.checks)) == ["a"]


async def test_catalog_lists_names_with_tags_and_instances(twin: ConsulTwin) -> None:
    c = client(twin)
    await call(c.agent.service.register, "web", service_id="w1", port=1, tags=["a"])
    await call(c.agent.service.register, "web", service_id="w2", port=2, tags=["b"])
    index, names = await call(c.catalog.services)
    assert names == {"consul": [], "web": ["a", "b"]}
    assert int(index) > 0
    _, nodes = await call(c.catalog.service, "web")
    assert [(n["ServiceID"], n["ServicePort"]) for n in nodes] == [("w1", 1), ("w2", 2)]
    assert {n["Node"] for n in nodes} == {"devstack"}
    _, tagged = await call(c.catalog.service, "web", tag="b")
    assert [n["ServiceID"] for n in tagged] == ["w2"]
    _, none = await call(c.catalog.service, "nope")
    assert none == []


async def test_health_includes_serf_health_and_passing_filters(twin: ConsulTwin) -> None:
    c = client(twin)
    await call(c.agent.service.register, "web", service_id="w1", check=consul.Check.ttl("30s"))
    await call(c.agent.service.register, "web", service_id="w2", check=consul.Check.ttl("30s"))
    await call(c.agent.check.ttl_pass, "service:w2", "fine")
    _, entries = await call(c.health.service, "web")
    assert [e["Service"]["ID"] for e in entries] == ["w1", "w2"]
    assert [ch["CheckID"] for ch in entries[0]["Checks"]] == ["serfHealth", "service:w1"]
    _, passing = await call(c.health.service, "web", passing=True)
    assert [e["Service"]["ID"] for e in passing] == ["w2"]
    assert passing[0]["Checks"][1]["Output"] == "fine"
    await call(c.agent.check.ttl_warn, "service:w2", "meh")
    _, passing = await call(c.health.service, "web", passing=True)
    assert passing == []  # warning is not passing


async def test_health_checks_and_state(twin: ConsulTwin) -> None:
    c = client(twin)
    await call(c.agent.service.register, "web", service_id="w1", check=consul.Check.ttl("30s"))
    _, checks = await call(c.health.checks, "web")
    assert [ch["CheckID"] for ch in checks] == ["service:w1"]
    _, critical = await call(c.health.state, "critical")
    assert [ch["CheckID"] for ch in critical] == ["service:w1"]
    _, passing = await call(c.health.state, "passing")
    assert [ch["CheckID"] for ch in passing] == ["serfHealth"]
    _, anything = await call(c.health.state, "any")
    assert {ch["CheckID"] for ch in anything} == {"serfHealth", "service:w1"}


async def test_unknown_field_is_a_bad_request(twin: ConsulTwin) -> None:
    c = client(twin)
    bad = {**consul.Check.ttl("30s"), "xyz": 1}
    with pytest.raises(consul.ConsulException) as err:
        await call(c.agent.service.register, "web", check=bad)
    assert str(err.value) == '400 Request decode failed: json: unknown field "xyz"'
    assert await call(c.agent.services) == {}


async def test_async_client_sees_the_same_world(twin: ConsulTwin) -> None:
    host, port = twin.address.split(":")
    c = consul.aio.Consul(host=host, port=int(port))
    try:
        assert await c.agent.service.register("db", service_id="db-1", port=5432) is True
        index, entries = await c.health.service("db")
        assert [e["Service"]["Port"] for e in entries] == [5432]
        assert int(index) == twin.state.name_index("db")
    finally:
        await c.http._session.close()
