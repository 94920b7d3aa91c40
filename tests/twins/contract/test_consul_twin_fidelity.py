"""Response shapes of the Consul twin against real Consul captures (tests/fixtures/consul/).

Shapes, not values: every key with its JSON type, recursively. For the Consul 1.16.2 capture the
key order must match too (Go marshals struct fields in declaration order). Older captures
(1.7-1.12) must be contained in the twin's shape; the only additions allowed are the fields
newer agents added, listed here.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from devstack.consul import ConsulTwin
from tests.support import paths
from tests.support.twins import ConsulTwinFactory

pytestmark = pytest.mark.timeout(30)

FIXTURES = paths.FIXTURES / "consul"
CAPTURES = json.loads((FIXTURES / "consul_real_response_captures.json").read_text())
# Fields Consul added after the older captures were taken: transparent proxy mode (1.10) and
# the agent version in node meta (present in the 1.16.2 capture's Node.Meta).
NEWER_FIELDS = {"ServiceProxy.Mode", "NodeMeta.consul-version"}


def shape(value: Any) -> Any:
    """The JSON type tree of a value: dict keys kept in order, lists by their first element."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return "null"
    return type(value).__name__


def missing(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Keys/types in `expected` that `actual` lacks or types differently."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '.'}: expected object, got {actual}"]
        out: list[str] = []
        for key, sub in expected.items():
            if key not in actual:
                out.append(f"{path}{key}: missing")
            else:
                out.extend(missing(sub, actual[key], f"{path}{key}."))
        return out
    if isinstance(expected, list):
        if expected and actual:
            return missing(expected[0], actual[0], f"{path}[0].")
        return []
    return [] if expected == actual else [f"{path.rstrip('.')}: {actual} != {expected}"]


def extra(expected: Any, actual: Any, path: str = "") -> list[str]:
    return missing(actual, expected, path)


def parse_wire_capture() -> list[tuple[dict[str, str], Any]]:
    """(headers, body) of each HTTP response in the .txt capture."""
    text = (FIXTURES / "consul-1.16.2_health_service_wire_capture.txt").read_text()
    out = []
    for block in text.split("HTTP/1.1 200 OK\n")[1:]:
        head, _, rest = block.partition("\n\n")
        headers = dict(line.split(": ", 1) for line in head.splitlines())
        out.append((headers, json.loads(rest.splitlines()[0])))
    return out


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(check_runner=False)


async def _register(twin: ConsulTwin, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{twin.url}/v1/agent/service/register", data=json.dumps(body)) as r,
    ):
        assert r.status == 200, await r.text()


async def _get(twin: ConsulTwin, path: str) -> tuple[dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{twin.url}{path}") as r:
        assert r.status == 200, await r.text()
        return dict(r.headers), await r.json()


async def test_health_service_matches_the_1_16_2_wire_capture(twin: ConsulTwin) -> None:
    await _register(
        twin,
        {
            "ID": "svc-1",
            "Name": "activator-default",
            "Tags": ["noc"],
            "Address": "127.0.0.1",
            "Port": 39677,
            "Check": {"HTTP": "http://127.0.0.1:39677/health/", "Interval": "10s", "Timeout": "1s"},
        },
    )
    headers, body = await _get(twin, "/v1/health/service/activator-default")
    captured_headers, captured = parse_wire_capture()[1]
    wanted = {k.lower() for k in captured_headers if k.lower().startswith("x-consul")}
    assert wanted <= {k.lower() for k in headers}
    assert headers["Content-Type"] == captured_headers["Content-Type"]
    assert shape(body) == shape(captured)  # same keys, same types, same order
    assert json.dumps(shape(body)) == json.dumps(shape(captured))
    check = body[0]["Checks"][1]
    assert (check["Type"], check["Interval"], check["Timeout"]) == ("http", "10s", "1s")


async def test_health_service_without_address_matches_the_first_capture(twin: ConsulTwin) -> None:
    await _register(
        twin, {"Name": "mongo", "Tags": ["primary"], "Port": 27017, "Check": {"TTL": "10s"}}
    )
    _, body = await _get(twin, "/v1/health/service/mongo")
    _, captured = parse_wire_capture()[0]
    assert json.dumps(shape(body)) == json.dumps(shape(captured))
    assert body[0]["Service"]["Meta"] is None


async def test_agent_services_and_checks_match_captures(twin: ConsulTwin) -> None:
    await _register(
        twin,
        {
            "ID": "redis1",
            "Name": "redis",
            "Tags": ["primary"],
            "Meta": {"redis_version": "4.0"},
            "Address": "127.0.0.1",
            "Port": 9000,
            "Check": {"HTTP": "http://127.0.0.1:9000/", "Interval": "10s"},
        },
    )
    _, services = await _get(twin, "/v1/agent/services")
    captured = CAPTURES["consul_1.1x_GET_agent_services"]["body"]["redis1"]
    assert json.dumps(shape(services["redis1"])) == json.dumps(shape(captured))
    _, checks = await _get(twin, "/v1/agent/checks")
    captured_check = CAPTURES["consul_1.1x_GET_agent_checks"]["body"]["service:test-service1"]
    assert json.dumps(shape(checks["service:redis1"])) == json.dumps(shape(captured_check))
    assert checks["service:redis1"]["Timeout"] == captured_check["Timeout"] == ""


async def test_catalog_matches_captures_plus_newer_fields_only(twin: ConsulTwin) -> None:
    await _register(
        twin,
        {"ID": "redis", "Name": "redis", "Tags": ["service"], "Address": "10.1.2.3", "Port": 9121},
    )
    _, nodes = await _get(twin, "/v1/catalog/service/redis")
    captured = CAPTURES["consul_1.7-1.12_GET_catalog_service"]["body"]
    assert missing(shape(captured), shape(nodes)) == []
    added = {p.split(": ")[0].replace("[0].", "") for p in extra(shape(captured), shape(nodes))}
    assert added == NEWER_FIELDS
    _, names = await _get(twin, "/v1/catalog/services")
    captured_names = CAPTURES["consul_GET_catalog_services"]["body"]
    assert names["consul"] == captured_names["consul"] == []  # the server's own service
    assert {shape(v)[0] if v else "str" for v in [*names.values(), *captured_names.values()]} == {
        "str"
    }
    assert names["redis"] == ["service"]


async def test_deregister_unknown_text_matches_capture(twin: ConsulTwin) -> None:
    capture = CAPTURES["consul_agent_deregister_unknown_service"]
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{twin.url}/v1/agent/service/deregister/web-1") as r,
    ):
        assert r.status == capture["status"]
        assert await r.text() == capture["body_text"]
        assert r.headers["Content-Type"].startswith("text/plain")
