"""The Nomad->Consul registrar against the Consul twin over HTTP, checked with py-consul."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import consul
import pytest
import pytest_asyncio
from aiohttp import web

from devstack import godur
from devstack.consul import ConsulTwin
from devstack.registrar import ConsulRegistrar
from tests.support.twins import ConsulTwinFactory

pytestmark = pytest.mark.timeout(30)

ALLOC_ID = "0c1f9a4e-5d2b-4c61-9a3e-1b2c3d4e5f60"


def hand_built_alloc(port: int) -> dict[str, Any]:
    """An allocation as the Nomad API returns it (only the fields registration reads)."""
    service = {
        "Name": "web",
        "PortLabel": "http",
        "Tags": ["v1"],
        "Provider": "consul",
        "Checks": [
            {
                "Name": "alive",
                "Type": "http",
                "Path": "/health",
                "Interval": godur.SECOND,
                "Timeout": godur.SECOND,
            }
        ],
    }
    return {
        "ID": ALLOC_ID,
        "Name": "shop.web[0]",
        "Namespace": "default",
        "TaskGroup": "web",
        "Job": {"ID": "shop", "TaskGroups": [{"Name": "web", "Services": [service], "Tasks": []}]},
        "AllocatedResources": {
            "Shared": {"Ports": [{"Label": "http", "Value": port, "HostIP": "127.0.0.1"}]}
        },
    }


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(min_check_interval=0.05)


@pytest_asyncio.fixture
async def app_port() -> AsyncIterator[int]:
    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site.port
    finally:
        await runner.cleanup()


def client(twin: ConsulTwin) -> consul.Consul:
    host, port = twin.address.split(":")
    return consul.Consul(host=host, port=int(port))


async def test_registers_with_nomads_id_and_deregisters_on_stop(
    twin: ConsulTwin, app_port: int
) -> None:
    registrar = ConsulRegistrar(twin.address)
    sid = f"_nomad-task-{ALLOC_ID}-group-web-web-http"
    try:
        await registrar.on_alloc_running(hand_built_alloc(app_port))
        services = await asyncio.to_thread(client(twin).agent.services)
        assert set(services) == {sid}
        assert services[sid]["Meta"] == {"external-source": "nomad"}
        assert (services[sid]["Address"], services[sid]["Port"]) == ("127.0.0.1", app_port)
        await twin.state.wait_until(
            lambda: all(c.status == "passing" for c in twin.state.checks_of(sid))
        )
        _, healthy = await asyncio.to_thread(client(twin).health.service, "web", passing=True)
        assert [e["Service"]["ID"] for e in healthy] == [sid]
        assert healthy[0]["Checks"][1]["Output"].startswith(
            f"HTTP GET http://127.0.0.1:{app_port}/health: 200 OK"
        )
        await registrar.on_alloc_stopped(hand_built_alloc(app_port))
        assert await asyncio.to_thread(client(twin).agent.services) == {}
        assert await asyncio.to_thread(client(twin).agent.checks) == {}
    finally:
        await registrar.close()


async def test_before_a_kill_group_services_go_first_and_task_services_stay_passing(
    twin: ConsulTwin, app_port: int
) -> None:
    alloc = hand_built_alloc(app_port)
    group = alloc["Job"]["TaskGroups"][0]
    task_service = {**group["Services"][0], "Name": "web-app"}
    group["Tasks"] = [{"Name": "app", "Services": [task_service]}]
    group_sid = f"_nomad-task-{ALLOC_ID}-group-web-web-http"
    task_sid = f"_nomad-task-{ALLOC_ID}-app-web-app-http"
    registrar = ConsulRegistrar(twin.address)
    try:
        await registrar.on_alloc_running(alloc)
        await twin.state.wait_until(
            lambda: all(c.status == "passing" for c in twin.state.checks_of(task_sid))
        )
        await registrar.on_alloc_stopping(alloc, None)  # the group's pre-kill hook
        services = await asyncio.to_thread(client(twin).agent.services)
        assert set(services) == {task_sid}
        _, healthy = await asyncio.to_thread(client(twin).health.service, "web-app", passing=True)
        assert [e["Service"]["ID"] for e in healthy] == [task_sid]  # not reset to critical
        await registrar.on_alloc_stopping(alloc, "app")  # the task's, once it is being killed
        assert await asyncio.to_thread(client(twin).agent.services) == {}
        assert group_sid not in twin.state.services
        await registrar.on_alloc_stopped(alloc)
        assert await asyncio.to_thread(client(twin).agent.checks) == {}
    finally:
        await registrar.close()


async def test_retries_while_consul_is_away(twin: ConsulTwin, app_port: int) -> None:
    registrar = ConsulRegistrar(twin.address, retry_interval=0.05)
    try:
        await twin.faults.pause()
        await registrar.on_alloc_running(hand_built_alloc(app_port))  # fails, queued
        assert twin.state.services.keys() == {"consul"}
        await twin.faults.resume()
        await twin.state.wait_until(lambda: len(twin.state.services) == 2)
        await twin.faults.pause()
        await registrar.on_alloc_stopped(hand_built_alloc(app_port))
        await twin.faults.resume()
        await twin.state.wait_until(lambda: twin.state.services.keys() == {"consul"})
    finally:
        await registrar.close()


def nomad_job() -> dict[str, Any]:
    """A job as the Nomad HTTP API takes it: one group service with an http check."""
    check = {
        "Name": "alive",
        "Type": "http",
        "Path": "/health",
        "Interval": 10 * godur.SECOND,
        "Timeout": 2 * godur.SECOND,
    }
    return {
        "ID": "shop",
        "Name": "shop",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 2,
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {"Name": "web", "PortLabel": "http", "Tags": ["v1"], "Checks": [check]}
                ],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "shop:1"}}],
            }
        ],
    }


async def test_with_the_nomad_twin_job_services_come_and_go(twin: ConsulTwin) -> None:
    from devstack.nomad import start_nomad_twin

    registrar = ConsulRegistrar(twin.address)
    nomad = await start_nomad_twin(nodes=2, alloc_hooks=registrar)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.put(f"{nomad.url}/v1/jobs", json={"Job": nomad_job()}) as r:
                assert r.status == 200, await r.text()
            await twin.state.wait_until(lambda: len(twin.state.services_named("web")) == 2)
            async with s.get(f"{nomad.url}/v1/job/shop/allocations") as r:
                allocs = await r.json()
            for stub in allocs:
                async with s.get(f"{nomad.url}/v1/allocation/{stub['ID']}") as r:
                    alloc = await r.json()
                port = alloc["AllocatedResources"]["Shared"]["Ports"][0]
                sid = f"_nomad-task-{alloc['ID']}-group-web-web-http"
                svc = twin.state.services[sid]
                assert (svc.address, svc.port) == (port["HostIP"], port["Value"])
                assert svc.meta == {"external-source": "nomad"}
                [check] = twin.state.checks_of(sid)
                assert check.definition["HTTP"] == f"http://{port['HostIP']}:{port['Value']}/health"
                assert (check.interval, check.timeout) == ("10s", "2s")
            async with s.delete(f"{nomad.url}/v1/job/shop") as r:
                assert r.status == 200, await r.text()
            await twin.state.wait_until(lambda: twin.state.services_named("web") == [])
            assert [c for c in twin.state.checks.values() if c.agent_local] == []
    finally:
        await nomad.stop()
        await registrar.close()
