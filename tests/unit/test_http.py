"""The HTTP surface: probe decisions (pure), endpoints, metrics exposition, and request limits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from controller.http import (
    HttpLimits,
    HttpServer,
    LeaderFacts,
    ProbeState,
    health,
    readiness,
    register_phase_gauge,
)
from controller.runtime import FakeClock, SystemClock

pytestmark = pytest.mark.timeout(20)


def state(facts: LeaderFacts, *, tick_age: float = 0.0) -> ProbeState:
    return ProbeState(facts=facts, loop_tick_age=tick_age, stream_limit=120.0, loop_limit=10.0)


# --- probe decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "tick_age", "ok"),
    [
        (LeaderFacts(leading=False, synced=False), 0.0, True),
        (LeaderFacts(leading=True, synced=True, leading_for=500, last_line_age=1.0), 0.0, True),
        (LeaderFacts(leading=True, synced=True, leading_for=500, last_line_age=121.0), 0.0, False),
        # Just elected, no line yet: measured from the election.
        (LeaderFacts(leading=True, synced=False, leading_for=3.0), 0.0, True),
        (LeaderFacts(leading=True, synced=False, leading_for=300.0), 0.0, False),
        # A stalled loop fails everyone, standbys included.
        (LeaderFacts(leading=False, synced=False), 11.0, False),
    ],
)
def test_health(facts: LeaderFacts, tick_age: float, ok: bool) -> None:
    assert health(state(facts, tick_age=tick_age)).ok is ok


@pytest.mark.parametrize(
    ("facts", "ok"),
    [
        (LeaderFacts(leading=False, synced=False), True),
        (LeaderFacts(leading=True, synced=False, leading_for=1.0), False),
        (LeaderFacts(leading=True, synced=True, leading_for=1.0), True),
    ],
)
def test_readiness(facts: LeaderFacts, ok: bool) -> None:
    assert readiness(state(facts)).ok is ok


async def test_stalled_loop_is_seen_on_the_injected_clock() -> None:
    clock = FakeClock()
    server = HttpServer(view=View(), registry=CollectorRegistry(), clock=clock, loop_limit=10.0)
    assert health(server.probe_state()).ok
    await clock.advance(11.0)  # the monitor task is not running: nothing ticks for 11 s
    verdict = health(server.probe_state())
    assert not verdict.ok
    assert "stalled" in verdict.reason


# --- the server ------------------------------------------------------------------------------


class View:
    def __init__(self) -> None:
        self.current = LeaderFacts(leading=False, synced=False)
        self.delay = 0.0

    def facts(self) -> LeaderFacts:
        return self.current

    async def status(self) -> dict[str, Any]:
        if self.delay:
            await asyncio.sleep(self.delay)
        return {"leading": self.current.leading, "jobs": [{"job": "web", "phase": "Ready"}]}


@contextlib.asynccontextmanager
async def serving(
    view: View, registry: CollectorRegistry, limits: HttpLimits | None = None
) -> AsyncIterator[HttpServer]:
    server = HttpServer(
        view=view, registry=registry, clock=SystemClock(), port=0, limits=limits, tick=0.05
    )
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.started.wait(), 5)
    try:
        yield server
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def request(method: str, url: str, **kwargs: Any) -> int:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as r:
        return r.status


async def test_endpoints_follow_the_view() -> None:
    view = View()
    async with serving(view, CollectorRegistry()) as server:
        assert server.port != 0
        assert server.url.startswith("http://127.0.0.1:")
        assert (await get(server.url + "/healthz"))[0] == 200
        assert (await get(server.url + "/readyz"))[0] == 200

        view.current = LeaderFacts(leading=True, synced=False, leading_for=1.0)
        status, body = await get(server.url + "/readyz")
        assert status == 503
        assert "initial LIST" in body

        view.current = LeaderFacts(leading=True, synced=True, leading_for=900, last_line_age=500)
        status, body = await get(server.url + "/healthz")
        assert status == 503
        assert "silent" in body

        status, body = await get(server.url + "/status")
        assert status == 200
        assert '"phase": "Ready"' in body
        assert (await get(server.url + "/nope"))[0] == 404


async def test_metrics_expose_the_shared_registry() -> None:
    registry = CollectorRegistry()
    Counter("controller_reconcile", "x", ["result"], registry=registry).labels("success").inc(3)
    register_phase_gauge(registry, lambda: {"Ready": 2, "Invalid": 1})
    async with serving(View(), registry) as server:
        status, text = await get(server.url + "/metrics")
    assert status == 200
    assert 'controller_reconcile_total{result="success"} 3.0' in text
    assert 'mesh_jobs{phase="Ready"} 2.0' in text
    assert 'mesh_jobs{phase="Invalid"} 1.0' in text
    assert 'mesh_jobs{phase="Degraded"} 0.0' in text  # every phase is always exported


async def test_only_reads_are_served() -> None:
    async with serving(View(), CollectorRegistry()) as server:
        status = await request("POST", server.url + "/status")
    assert status == 405


async def test_oversized_body_and_header_are_refused() -> None:
    limits = HttpLimits(max_body=64, max_field=256)
    async with serving(View(), CollectorRegistry(), limits) as server:
        assert await request("GET", server.url + "/status", data=b"x" * 1000) == 413
        big = await request("GET", server.url + "/status", headers={"X-Big": "y" * 2000})
    assert big in (400, 431)


async def test_slow_handler_is_cut_off() -> None:
    view = View()
    view.delay = 5.0
    async with serving(view, CollectorRegistry(), HttpLimits(handler_timeout=0.1)) as server:
        status, body = await get(server.url + "/status")
    assert status == 503
    assert "timed out" in body


async def test_a_connection_without_a_complete_request_is_closed() -> None:
    async with serving(View(), CollectorRegistry(), HttpLimits(header_timeout=0.2)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)  # EOF once the server gives up
        assert data == b""
        writer.close()
