"""Fault knobs of the Consul twin: a paused agent refuses connections for real; 5xx; latency."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import pytest_asyncio

from devstack.consul import ConsulTwin
from tests.support.twins import ConsulTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(check_runner=False)


async def leader(twin: ConsulTwin) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{twin.url}/v1/status/leader") as r:
        return r.status


async def test_pause_refuses_connections_and_resume_serves_the_same_state(
    twin: ConsulTwin,
) -> None:
    async with aiohttp.ClientSession() as s:
        body = json.dumps({"Name": "web"})
        async with s.put(f"{twin.url}/v1/agent/service/register", data=body) as r:
            assert r.status == 200
    await twin.faults.pause()
    with pytest.raises(aiohttp.ClientConnectorError):
        await leader(twin)
    await twin.faults.resume()
    assert await leader(twin) == 200
    assert "web" in twin.state.services


async def test_pause_drops_a_blocking_query_in_flight(twin: ConsulTwin) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{twin.url}/v1/catalog/services") as r:
            index = r.headers["X-Consul-Index"]

        async def blocked() -> None:
            params = {"index": index, "wait": "20s"}
            async with s.get(f"{twin.url}/v1/catalog/services", params=params) as r:
                await r.read()

        waiter = asyncio.create_task(blocked())
        await eventually(
            lambda: twin.state.blocked_queries > 0, every=0.01, what="the request parked"
        )
        await twin.faults.pause()
        with pytest.raises(aiohttp.ClientError):
            await waiter
    await twin.faults.resume()


async def test_error_ratio_and_latency_over_http(twin: ConsulTwin) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{twin.url}/_twin/faults", json={"error_ratio": 1.0}) as r:
            assert (await r.json())["error_ratio"] == 1.0
        async with s.get(f"{twin.url}/v1/catalog/services") as r:
            assert r.status == 500
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert await r.text() == "rpc error making call: No cluster leader"
        async with s.put(f"{twin.url}/_twin/faults", json={"error_ratio": 0, "latency": "2s"}):
            pass
        assert twin.faults.latency == 2.0
        short = aiohttp.ClientTimeout(total=0.05)
        with pytest.raises(TimeoutError):
            await s.get(f"{twin.url}/v1/status/leader", timeout=short)
        async with s.put(f"{twin.url}/_twin/reset") as r:
            assert await r.json() == {"error_ratio": 0.0, "latency": 0.0, "paused": False}
        async with s.get(f"{twin.url}/v1/catalog/services") as r:
            assert r.status == 200


async def test_timed_pause_over_http_resumes_by_itself(twin: ConsulTwin) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{twin.url}/_twin/pause") as r:
            assert r.status == 400  # nobody could resume it over HTTP
        async with s.put(f"{twin.url}/_twin/pause?duration=300ms") as r:
            assert r.status == 200
    # It pauses once the answer has gone out.
    await eventually(lambda: twin.faults.paused, every=0.01, what="paused")
    with pytest.raises(aiohttp.ClientConnectorError):
        await leader(twin)
    await eventually(lambda: not twin.faults.paused, every=0.02, what="resumed by itself")
    assert await leader(twin) == 200
