"""Both ends of a meshed call on the real data plane: a plaintext caller -> its own sidecar's
upstream listener -> mTLS -> the server's sidecar with an allow list -> the app.

Jobs are injected by the real compiler, their sidecar templates rendered by the devstack
renderer against real OpenBao and the Consul twin (the upstream's instances come from
``service "mesh-tls.<name>"`` inside nginx.conf), and every sidecar is real nginx started with
the task's own command line. The Nomad client's part (ports, env, re-render, SIGHUP) is played
by ``devstack.sidecar_render`` and ``tests.support.mesh_nginx``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controller.config.mesh import load_mesh_config
from controller.vault import VaultClient, VaultConnection, bootstrap_pki
from crds_equivalent import keys
from crds_equivalent.spec import parse_job_specs
from devstack.consul import ConsulTwin, start_consul_twin
from devstack.nomad.nsd import NativeServices
from devstack.sidecar_render import free_port, render_sidecar
from devstack.template import NomadTarget, VaultTarget
from devstack.vault import OpenBao
from devstack.workload_login import workload_token
from reconcilers.injection.grant import job_leaf_names
from reconcilers.injection.inject import inject
from tests.support.mesh_nginx import HOST, Nginx, start_nginx
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

NGINX = "/usr/sbin/nginx"
CONFIG = load_mesh_config({"MESH_SIDECAR_DRIVER": "raw_exec", "MESH_NGINX_BIN": NGINX})


def fronting_job(job_id: str, meta: dict[str, str]) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "api",
                "Count": 1,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": job_id, "PortLabel": "http"}],
                "Tasks": [{"Name": "app", "Driver": "raw_exec", "Config": {"command": "/bin/app"}}],
                "Meta": {"mesh.tls": "true", **meta},
            }
        ],
    }


def pure_client_job(job_id: str, upstreams: str) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Type": "batch",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "run",
                "Tasks": [{"Name": "run", "Driver": "raw_exec", "Config": {"command": "/bin/run"}}],
                "Meta": {"mesh.tls": "true", "mesh.tls.upstreams": upstreams},
            }
        ],
    }


@dataclass
class World:
    bao: OpenBao
    consul: ConsulTwin
    root: Path
    started: list[Nginx]
    nomad: NomadTarget | None = None

    async def sidecar(self, job: dict[str, Any], listen: int | None = None) -> Nginx:
        specs = parse_job_specs(job)
        injected = inject(job, specs, CONFIG)
        # the sidecar's own token: a JWT login of its job after the controller's grant of the
        # job's names (role mesh.<namespace>.<job>), as the Nomad client holds it
        token = await workload_token(self.bao, job["ID"], job_leaf_names(job, specs, CONFIG))
        rendered = await render_sidecar(
            injected,
            VaultTarget(self.bao.addr, token),
            self.root / job["ID"],
            consul_addr=self.consul.address,
            nomad=self.nomad,
        )
        nginx = await start_nginx(rendered)
        self.started.append(nginx)
        port = listen or rendered.ports[keys.tls_port_label("http")]
        await nginx.wait_listening(port)
        return nginx


@pytest.fixture
async def world(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[World]:
    await bootstrap_pki(VaultClient(VaultConnection(openbao.addr, openbao.root_token)))
    consul = await start_consul_twin(check_runner=False)
    w = World(openbao, consul, tmp_path, [])
    try:
        yield w
    finally:
        for nginx in w.started:
            await nginx.stop()
        await consul.stop()


@dataclass
class App:
    seen: list[dict[str, str | None]]
    release: asyncio.Event
    entered: asyncio.Event


@pytest.fixture
async def app_on() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(port: int) -> App:
        app_state = App([], asyncio.Event(), asyncio.Event())

        async def hello(request: web.Request) -> web.Response:
            app_state.seen.append({"proto": request.headers.get("X-Forwarded-Proto")})
            return web.Response(text=f"billing says hi to {request.path}")

        async def slow(request: web.Request) -> web.Response:
            app_state.entered.set()
            await app_state.release.wait()
            return web.Response(text="slow done")

        app = web.Application()
        app.router.add_get("/slow", slow)
        app.router.add_get("/{tail:.*}", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        runners.append(runner)
        return app_state

    yield start
    for runner in runners:
        await runner.cleanup()


async def register(consul: ConsulTwin, sid: str, name: str, port: int, tag: str) -> None:
    body = {"ID": sid, "Name": name, "Tags": [tag], "Address": HOST, "Port": port}
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{consul.url}/v1/agent/service/register", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def get(port: int, path: str = "/x") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://{HOST}:{port}{path}") as resp:
        return resp.status, await resp.text()


def denials(server: Nginx) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in server.stdout.read_text().splitlines()
        if '"event":"mesh.tls.allow denied"' in line
    ]


async def start_billing(world: World, app_on: Any) -> tuple[Nginx, App]:
    server = await world.sidecar(
        fronting_job("billing", {"mesh.tls.mtls": "true", "mesh.tls.allow": "frontend"})
    )
    app = await app_on(server.sidecar.ports["http"])
    tls_port = server.sidecar.ports[keys.tls_port_label("http")]
    await register(world.consul, "billing-plain", "billing", server.sidecar.ports["http"], "x")
    await register(world.consul, "billing-tls", "billing", tls_port, keys.TLS_SERVICE_TAG)
    return server, app


async def test_allowed_caller_gets_through_and_another_gets_403_logged(
    world: World, app_on: Any
) -> None:
    server, app = await start_billing(world, app_on)
    allowed, denied = free_port(), free_port()
    await world.sidecar(
        fronting_job("frontend", {"mesh.tls.upstreams": f"billing:{allowed}"}), allowed
    )
    await world.sidecar(pure_client_job("reports", f"billing:{denied}"), denied)

    for _ in range(3):  # per request, over kept-alive connections
        assert await get(allowed, "/invoices") == (200, "billing says hi to /invoices")
    assert app.seen[-1] == {"proto": "https"}  # the server's sidecar terminated TLS
    status, _ = await get(denied)
    assert status == 403
    assert len(app.seen) == 3  # the denied request never reached the app
    [line] = await eventually(lambda: denials(server), what="the denial logged")
    assert line["caller"] == "CN=reports.service.consul"
    assert line["status"] == "403" and line["verify"] == "SUCCESS"
    assert line["tls"] == "TLSv1.3"
    assert line["request"] == "GET /x HTTP/1.1"


async def test_an_upstream_without_instances_answers_503_then_reloads_when_one_appears(
    world: World, app_on: Any
) -> None:
    listen = free_port()
    caller = await world.sidecar(
        fronting_job("frontend", {"mesh.tls.upstreams": f"billing:{listen}"}), listen
    )
    status, body = await get(listen)
    assert (status, body) == (503, "mesh: no healthy mesh-tls instance of billing in consul\n")

    await start_billing(world, app_on)
    changed = await caller.sidecar.render_templates()
    assert changed[-1] is True  # nginx.conf now lists the instance
    caller.reload()

    async def served() -> bool:
        return (await get(listen))[0] == 200

    await eventually(served, every=0.05, what="the reloaded upstream answering")


async def test_a_reload_does_not_cut_a_request_in_flight(world: World, app_on: Any) -> None:
    _, app = await start_billing(world, app_on)
    listen = free_port()
    caller = await world.sidecar(
        fronting_job("frontend", {"mesh.tls.upstreams": f"billing:{listen}"}), listen
    )
    slow = asyncio.create_task(get(listen, "/slow"))
    await asyncio.wait_for(app.entered.wait(), 10)
    await register(world.consul, "billing-tls-2", "billing", free_port(), keys.TLS_SERVICE_TAG)
    assert (await caller.sidecar.render_templates())[-1] is True
    caller.reload()
    await asyncio.sleep(0.5)  # the old worker is told to finish; the new config is live
    app.release.set()
    assert await asyncio.wait_for(slow, 10) == (200, "slow done")


async def echo_server(port: int) -> asyncio.Server:
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        data = await r.readline()
        w.write(b"echo " + data)
        await w.drain()
        w.close()

    return await asyncio.start_server(echo, HOST, port)


async def talk(port: int) -> bytes:
    """One line out, everything back until the peer closes; b"" when it closed without an
    answer (a reset counts: nginx closing before it read our line makes the kernel send RST)."""
    r, w = await asyncio.open_connection(HOST, port)
    w.write(b"ping\n")
    await w.drain()
    try:
        return await asyncio.wait_for(r.read(), 10)
    except ConnectionResetError:
        return b""
    finally:
        w.close()


async def test_tcp_upstreams_carry_allowed_connections_and_close_the_rest(world: World) -> None:
    listen, denied, empty = free_port(), free_port(), free_port()
    caller = await world.sidecar(
        fronting_job("frontend", {"mesh.tls.upstreams": f"cache:{listen}/tcp, nobody:{empty}/tcp"}),
        listen,
    )
    assert await talk(empty) == b""  # no instance: the connection closes at once
    meta = {"mesh.tls.mtls": "true", "mesh.tls.allow": "frontend", "mesh.tls.protocol": "tcp"}
    server = await world.sidecar(fronting_job("cache", meta))
    echo = await echo_server(server.sidecar.ports["http"])
    try:
        tls_port = server.sidecar.ports[keys.tls_port_label("http")]
        await register(world.consul, "cache-tls", "cache", tls_port, keys.TLS_SERVICE_TAG)
        assert (await caller.sidecar.render_templates())[-1] is True
        caller.reload()

        async def carried() -> bool:
            return await talk(listen) == b"echo ping\n"

        await eventually(carried, every=0.05, what="the tcp upstream carrying a connection")
        await world.sidecar(pure_client_job("reports", f"cache:{denied}/tcp"), denied)
        assert await talk(denied) == b""
        # Every connection to the caller's listener is one denial (the readiness probe's too).
        await eventually(lambda: bool(denials(server)), every=0.05, what="a denial logged")
        for line in denials(server):
            assert line["caller"] == "CN=reports.service.consul" and line["tls"] == "TLSv1.3"
    finally:
        echo.close()


async def test_an_upstream_in_nomads_catalog_is_found_with_nomad_service(
    world: World, app_on: Any, make_nomad_twin: NomadTwinFactory
) -> None:
    twin = await make_nomad_twin(nodes=1)
    world.nomad = NomadTarget(twin.url, namespace="default")
    server, _ = await start_billing(world, app_on)
    tls_port = server.sidecar.ports[keys.tls_port_label("http")]
    NativeServices(twin.state, {}).upsert(
        [
            {
                "ID": "_nomad-task-a1-group-api-billing-mesh_tls_http",
                "ServiceName": "billing",
                "Namespace": "default",
                "NodeID": "node-1",
                "Datacenter": "dc1",
                "JobID": "billing",
                "AllocID": "a1",
                "Tags": [keys.TLS_SERVICE_TAG],
                "Address": HOST,
                "Port": tls_port,
                "CreateIndex": 0,
                "ModifyIndex": 0,
            }
        ]
    )
    listen = free_port()
    await world.sidecar(
        fronting_job("frontend", {"mesh.tls.upstreams": f"billing:{listen}@nomad"}), listen
    )
    assert await get(listen, "/native") == (200, "billing says hi to /native")
