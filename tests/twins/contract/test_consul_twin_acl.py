"""Contract tests: Consul ACL enforcement on the twin (audit §11).

Consul ``agent/consul/acl.go`` ``aclFilter`` filters reads (``200 []``), ``agent/http.go``
sets ``X-Consul-Results-Filtered-By-ACLs: true`` for non-anonymous tokens only, writes
without ``service:write`` are 403 with ``acl.PermissionDeniedError`` text, an unknown
token is 403 ``ACL not found``. Raw HTTP for exact texts, py-consul as a client would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import consul
import pytest

from devstack.consul import ConsulTwin, start_consul_twin
from devstack.consul.acl import ConsulAcl, Token

pytestmark = pytest.mark.timeout(30)

READER = Token(
    "aaaaaaaa-0000-0000-0000-000000000001",
    {"service_prefix": {"": "read"}, "node_prefix": {"": "read"}},
)
BLIND = Token("bbbbbbbb-0000-0000-0000-000000000002", {"service": {"other": "read"}})
WRITER = Token("cccccccc-0000-0000-0000-000000000003", {"service": {"web": "write"}})


@pytest.fixture
async def twin() -> AsyncIterator[ConsulTwin]:
    acl = ConsulAcl(
        tokens={
            "mgmt": Token("m", management=True),
            "reader": READER,
            "blind": BLIND,
            "writer": WRITER,
        }
    )
    t = await start_consul_twin(check_runner=False, acl=acl)
    async with aiohttp.ClientSession(headers={"X-Consul-Token": "mgmt"}) as http:
        reg = {"Name": "web", "ID": "web-1", "Port": 8080}
        async with http.put(f"{t.url}/v1/agent/service/register", json=reg) as resp:
            assert resp.status == 200, await resp.text()
    yield t
    await t.stop()


async def get(url: str, token: str | None) -> tuple[int, object, str | None]:
    headers = {"X-Consul-Token": token} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers.get("X-Consul-Results-Filtered-By-ACLs")


async def test_token_without_read_sees_empty_list_not_403(twin: ConsulTwin) -> None:
    status, body, filtered = await get(f"{twin.url}/v1/health/service/web", "blind")
    assert (status, body, filtered) == (200, [], "true")
    status, body, filtered = await get(f"{twin.url}/v1/catalog/service/web", "blind")
    assert (status, body, filtered) == (200, [], "true")
    status, body, _ = await get(f"{twin.url}/v1/catalog/services", "blind")
    assert (status, body) == (200, {})


async def test_anonymous_is_filtered_without_the_header(twin: ConsulTwin) -> None:
    status, body, filtered = await get(f"{twin.url}/v1/health/service/web", None)
    assert (status, body, filtered) == (200, [], None)


async def test_reader_sees_everything_unflagged(twin: ConsulTwin) -> None:
    status, body, filtered = await get(f"{twin.url}/v1/health/service/web", "reader")
    assert status == 200 and [e["Service"]["ID"] for e in body] == ["web-1"]  # type: ignore[index,union-attr]
    assert filtered is None
    c = consul.Consul(host="127.0.0.1", port=int(twin.address.rsplit(":", 1)[1]), token="blind")
    _, nodes = await asyncio.to_thread(c.health.service, "web")  # sync client: off the loop
    assert nodes == []


async def test_unknown_token_and_denied_writes(twin: ConsulTwin) -> None:
    assert (await get(f"{twin.url}/v1/health/service/web", "nope"))[:2] == (403, "ACL not found")
    async with aiohttp.ClientSession(headers={"X-Consul-Token": "reader"}) as http:
        reg = {"Name": "web", "ID": "web-2"}
        async with http.put(f"{twin.url}/v1/agent/service/register", json=reg) as resp:
            assert (resp.status, await resp.text()) == (
                403,
                "Permission denied: token with AccessorID "
                "'aaaaaaaa-0000-0000-0000-000000000001' lacks permission "
                "'service:write' on \"web\"",
            )
        async with http.put(f"{twin.url}/v1/agent/service/deregister/web-1") as resp:
            assert resp.status == 403
    reg_url = f"{twin.url}/v1/agent/service/register"
    async with aiohttp.ClientSession() as http, http.put(reg_url, json={"Name": "db"}) as resp:
        assert (resp.status, await resp.text()) == (
            403,
            "Permission denied: anonymous token lacks permission 'service:write' on \"db\". "
            "The anonymous token is used implicitly when a request does not specify a token.",
        )
    async with aiohttp.ClientSession(headers={"X-Consul-Token": "writer"}) as http:
        reg = {"Name": "web", "ID": "web-3"}
        async with http.put(f"{twin.url}/v1/agent/service/register", json=reg) as resp:
            assert resp.status == 200
