"""The Consul twin on the wire, with raw aiohttp: headers, blocking queries, errors, decoding."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import pytest_asyncio

from devstack.consul import ConsulTwin
from tests.support.twins import ConsulTwinFactory

pytestmark = pytest.mark.timeout(30)


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(check_runner=False)


async def put(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, str]:
    async with http.put(url, data=json.dumps(body)) as r:
        return r.status, await r.text()


async def test_read_headers_and_compact_json(twin: ConsulTwin, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{twin.url}/v1/health/service/nothing") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        assert int(r.headers["X-Consul-Index"]) >= 1
        assert r.headers["X-Consul-KnownLeader"] == "true"
        assert r.headers["X-Consul-LastContact"] == "0"
        assert r.headers["X-Consul-Effective-Consistency"] == "leader"
        assert r.headers["X-Consul-Query-Backend"] == "blocking-query"
        assert r.headers["X-Consul-Default-Acl-Policy"] == "allow"
        assert await r.read() == b"[]"
    async with http.get(f"{twin.url}/v1/catalog/services?pretty") as r:
        assert (await r.text()).endswith("\n")
    async with http.get(f"{twin.url}/v1/agent/services") as r:
        assert "X-Consul-Index" not in r.headers


async def test_writes_answer_200_with_an_empty_body(
    twin: ConsulTwin, http: aiohttp.ClientSession
) -> None:
    status, text = await put(http, f"{twin.url}/v1/agent/service/register", {"Name": "web"})
    assert (status, text) == (200, "")


async def test_keys_are_case_insensitive_and_snake_aliases_work(
    twin: ConsulTwin, http: aiohttp.ClientSession
) -> None:
    body = {
        "NAME": "web",
        "id": "w1",
        "pOrT": 81,
        "enable_tag_override": True,
        "tagged_addresses": {"lan": {"address": "10.0.0.1", "port": 81}},
        "Check": {
            "http": "https://127.0.0.1:1/",
            "interval": "1m30s",
            "tls_skip_verify": True,
            "tls_server_name": "web.internal",
            "deregister_critical_service_after": "5m",
        },
    }
    status, text = await put(http, f"{twin.url}/v1/agent/service/register", body)
    assert (status, text) == (200, "")
    svc = twin.state.services["w1"]
    assert (svc.port, svc.enable_tag_override) == (81, True)
    assert svc.tagged_addresses == {"lan": {"Address": "10.0.0.1", "Port": 81}}
    check = twin.state.checks["service:w1"]
    assert check.interval == "1m30s"
    assert check.definition["TLSSkipVerify"] is True
    assert check.definition["TLSServerName"] == "web.internal"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"Name": "web", "Bogus": 1}, 'Request decode failed: json: unknown field "Bogus"'),
        ({"Port": 1}, "Missing service name"),
        ({"Name": "w", "Address": "0.0.0.0"}, "Invalid service address"),
        (
            {"Name": "w", "Port": "80"},
            "Request decode failed: json: cannot unmarshal string into Go struct field "
            "ServiceDefinition.Port of type int",
        ),
        (
            {"Name": "w", "Check": {"HTTP": "http://x/"}},
            "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or "
            "OSService checks",
        ),
        (
            {"Name": "w", "Check": {"TTL": "10s", "Interval": "10s"}},
            "Invalid check: Interval and TTL cannot both be specified",
        ),
        ({"Name": "w", "Check": {"Interval": "x", "TCP": "a:1"}}, 'time: invalid duration "x"'),
        ({"Name": "w", "Meta": {"consul-x": "1"}}, "Invalid Service Meta: Key prefix"),
        (
            {"Name": "w", "Check": {"TTL": "1s", "Status": "ok"}},
            "Status for checks must 'passing', 'warning', 'critical'",
        ),
    ],
)
async def test_register_rejections_are_plain_text_400(
    twin: ConsulTwin, http: aiohttp.ClientSession, body: dict[str, object], text: str
) -> None:
    async with http.put(f"{twin.url}/v1/agent/service/register", data=json.dumps(body)) as r:
        assert r.status == 400
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert text in await r.text()
    assert twin.state.services.keys() == {"consul"}


async def test_errors_for_bad_requests(twin: ConsulTwin, http: aiohttp.ClientSession) -> None:
    async with http.put(f"{twin.url}/v1/agent/service/register", data=b"") as r:
        assert (r.status, await r.text()) == (400, "Request decode failed: EOF")
    async with http.put(f"{twin.url}/v1/agent/service/deregister/web-1") as r:
        assert r.status == 404
        assert await r.text() == (
            'Unknown service ID "web-1". '
            "Ensure that the service ID is passed, not the service name."
        )
    async with http.get(f"{twin.url}/v1/agent/service/register") as r:
        assert (r.status, await r.text()) == (405, "method GET not allowed")
        assert "PUT" in r.headers["Allow"]
    cases = {
        "/v1/health/service/": (400, "Missing service name"),
        "/v1/health/service/web?passing=maybe": (400, "Invalid value for ?passing"),
        "/v1/health/service/web?index=abc": (400, "Invalid index"),
        "/v1/health/service/web?index=1&wait=soon": (400, "Invalid wait time"),
        "/v1/catalog/services?stale&consistent": (
            400,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ),
        "/v1/health/state/": (400, "Missing check state"),
    }
    for path, expected in cases.items():
        async with http.get(f"{twin.url}{path}") as r:
            assert (r.status, await r.text()) == expected, path


async def test_blocking_query_wakes_on_a_change_of_that_service(
    twin: ConsulTwin, http: aiohttp.ClientSession
) -> None:
    url = f"{twin.url}/v1/health/service/web"
    await put(http, f"{twin.url}/v1/agent/service/register", {"Name": "web", "Port": 8})
    async with http.get(url) as r:
        index = int(r.headers["X-Consul-Index"])

    async def blocked() -> tuple[int, list[dict[str, object]]]:
        async with http.get(url, params={"index": str(index), "wait": "20s"}) as r:
            return int(r.headers["X-Consul-Index"]), await r.json()

    waiter = asyncio.create_task(blocked())
    await asyncio.sleep(0)
    status, _ = await put(http, f"{twin.url}/v1/agent/service/register", {"Name": "other"})
    assert status == 200
    assert not waiter.done()  # another service's change does not wake it
    await put(http, f"{twin.url}/v1/agent/service/register", {"Name": "web", "Port": 9})
    new_index, body = await waiter
    assert new_index > index
    assert [e["Service"]["Port"] for e in body] == [9]  # type: ignore[index]


async def test_blocking_query_returns_unchanged_after_wait(
    twin: ConsulTwin, http: aiohttp.ClientSession
) -> None:
    url = f"{twin.url}/v1/catalog/services"
    async with http.get(url) as r:
        index = r.headers["X-Consul-Index"]
    async with http.get(url, params={"index": index, "wait": "50ms"}) as r:
        assert r.status == 200
        assert r.headers["X-Consul-Index"] == index


async def test_status_and_self_answer_a_health_probe(
    twin: ConsulTwin, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{twin.url}/v1/status/leader") as r:
        assert await r.json() == "127.0.0.1:8300"
    async with http.get(f"{twin.url}/v1/agent/self") as r:
        body = await r.json()
        assert body["Config"]["Datacenter"] == "dc1"
        assert body["Config"]["NodeName"] == "devstack"
        assert body["Member"]["Status"] == 1
