"""Contract tests: the ``forwarded_rpc`` knob answers as a follower or client agent.

``helper/pool/pool.go`` ``ConnPool.RPC`` (v1.7.0-v1.10.x) returns
``fmt.Errorf("rpc error: %w", err)`` for every error that is not RPC-coded;
``command/agent/http.go`` ``wrap`` maps Permission denied and friends back to 403 by
suffix and writes every other RPC error as a 500 with that text. HTTP-coded errors the
agent raises itself (400 decode, 404 job not found, 405) never crossed an RPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin

pytestmark = pytest.mark.timeout(30)


def job(job_id: str = "web") -> dict[str, Any]:
    return {
        "ID": job_id,
        "Type": "service",
        "TaskGroups": [
            {"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "x"}}]}
        ],
    }


@pytest.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(nodes=1, acl=True)
    yield t
    await t.stop()


@pytest.fixture
async def http(twin: NomadTwin) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"X-Nomad-Token": twin.management_token or ""}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, str]:
    async with http.request(method, url, **kw) as resp:
        return resp.status, await resp.text()


async def test_enforce_index_conflict_carries_rpc_prefix(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    status, _ = await call(http, "POST", f"{twin.url}/v1/jobs", json={"Job": job()})
    assert status == 200
    stored = await (await http.get(f"{twin.url}/v1/job/web")).json()
    async with http.post(f"{twin.url}/_twin/faults", json={"forwarded_rpc": True}) as resp:
        assert resp.status == 200
    body = {"Job": job(), "EnforceIndex": True, "JobModifyIndex": 1}
    assert await call(http, "POST", f"{twin.url}/v1/job/web", json=body) == (
        500,
        "rpc error: Enforcing job modify index 1: job exists with conflicting job modify "
        f"index: {stored['JobModifyIndex']}",
    )
    body = {"Job": job(), "EnforceIndex": True, "JobModifyIndex": 0}
    assert await call(http, "POST", f"{twin.url}/v1/job/web", json=body) == (
        500,
        "rpc error: Enforcing job modify index 0: job already exists",
    )


async def test_only_rpc_errors_are_prefixed(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    twin.faults.forwarded_rpc = True
    # RPC errors (500): prefixed.
    assert await call(http, "POST", f"{twin.url}/v1/job/nope/periodic/force") == (
        500,
        "rpc error: job not found",
    )
    assert await call(http, "POST", f"{twin.url}/v1/job/nope/dispatch", json={}) == (
        500,
        "rpc error: parameterized job not found",
    )
    # Permission denied is unwrapped by suffix in wrap(): 403 with the bare text.
    async with aiohttp.ClientSession(headers={"X-Nomad-Token": "bogus"}) as anon:
        status, text = await call(anon, "GET", f"{twin.url}/v1/jobs")
    assert (status, text) == (403, "Permission denied")
    # Agent-side HTTP-coded errors never crossed an RPC.
    assert await call(http, "GET", f"{twin.url}/v1/job/missing") == (404, "job not found")
    bad = {"Job": job("a")}
    assert await call(http, "POST", f"{twin.url}/v1/job/b", json=bad) == (
        400,
        "Job ID does not match name",
    )
    twin.faults.reset()
    assert await call(http, "POST", f"{twin.url}/v1/job/nope/periodic/force") == (
        500,
        "job not found",
    )
