"""End to end on the full devstack: real OpenBao, real processes (executor), real nginx, real TLS.

A user submits a plain raw_exec web app with `mesh.tls = "true"`; the controller running
in-process injects the sidecar; the allocation runs nginx with a leaf from OpenBao's mesh PKI;
HTTPS through the sidecar verifies against the root; Consul has the service only on its TLS
port, passing; the status Variable says Ready. Then `controller dev --demo` is run the way a
developer runs it, and both curls it prints must work: the one to `web` over TLS, and the
plain one to the `client` job's listener, which its sidecar carries to `web` over mTLS.
"""

from __future__ import annotations

import re
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import hvac
import psutil
import pytest

from controller.app import App
from controller.consul.client import ConsulClient
from controller.dev.demo import web_job, worker_job
from controller.vault import VaultClient, VaultConnection, root_pem
from crds_equivalent import keys
from devstack.executor import RawExecDriver
from devstack.up import Devstack
from tests.support.dev_process import controller_dev, run_curl
from tests.support.e2e_stack import PinnedResolver, world
from tests.support.waiting import eventually

__all__ = ["world"]  # the fixture, used by name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_a_meshed_raw_exec_job_serves_verified_https_through_nginx(
    world: tuple[Devstack, RawExecDriver, App],
) -> None:
    stack, driver, app = world
    vault = VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token))
    trust = ssl.create_default_context(cadata=await root_pem(vault, "pki"))
    consul = ConsulClient(stack.consul.address)
    try:
        started = time.monotonic()
        await app.jobs.register_job(web_job(), enforce_index=None)
        await app.jobs.register_job(worker_job(), enforce_index=None)

        async def ready() -> bool:
            status = await app.statuses.get("default", "web")  # the status record
            return status is not None and status.phase == "Ready"

        await eventually(ready, what="web Ready", within=60.0)
        converged = time.monotonic() - started
        print(f"\nweb converged (submit -> status Ready) in {converged:.1f}s")

        job = await app.jobs.get_job("web", "default")
        assert job is not None
        group = job["TaskGroups"][0]
        assert [t["Name"] for t in group["Tasks"]] == ["app", keys.SIDECAR_TASK]
        versions = await app.jobs.job_versions("web", "default")
        print(f"job versions: web={len(versions)}")
        assert len(versions) == 2  # the user's, and ours
        assert len(await app.jobs.job_versions("worker", "default")) == 1
        assert await app.statuses.get("default", "worker") is None

        # The current allocation runs the app and a real nginx.
        allocs = [
            a
            for a in await app.jobs.job_allocations("web", "default")
            if a["JobVersion"] == job["Version"] and a["ClientStatus"] == "running"
        ]
        assert len(allocs) == 1
        alloc = await app.jobs.read_allocation(allocs[0]["ID"], "default")
        assert alloc is not None
        pid = driver.pid(alloc["ID"], keys.SIDECAR_TASK)
        assert pid is not None
        assert "nginx" in psutil.Process(pid).name()
        ports = {p["Label"]: p for p in alloc["AllocatedResources"]["Shared"]["Ports"]}
        tls_port = ports[keys.tls_port_label("http")]

        # Consul: only the TLS registration is left (strict), and it passes.
        async def only_tls() -> list[Any]:
            entries = (await consul.health_service("web")).entries
            ok = entries and all(
                e.port == tls_port["Value"] and keys.TLS_SERVICE_TAG in e.tags and e.passing
                for e in entries
            )
            return list(entries) if ok else []

        entries = await eventually(only_tls, within=30, what="TLS-only, passing registration")
        print(f"Consul: TLS-only and passing {time.monotonic() - started:.1f}s after submit")
        assert len(entries) == 1
        checks = [c for c in entries[0].checks if c.get("ServiceID")]
        assert checks
        assert all(c["Status"] == "passing" for c in checks)

        # HTTPS through the sidecar, verified against the mesh root with the service's name.
        url = f"https://web.service.consul:{entries[0].port}/"
        resolver = PinnedResolver(entries[0].effective_address)
        connector = aiohttp.TCPConnector(ssl=trust, resolver=resolver)
        async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as r:
            assert r.status == 200
            assert (await r.text()).startswith("hello from web")
        assert entries[0].effective_address == tls_port["HostIP"]
    finally:
        await consul.close()


async def test_an_mtls_job_with_an_http_check_deploys_healthy_and_refuses_callers_without_a_cert(
    world: tuple[Devstack, RawExecDriver, App], tmp_path: Path
) -> None:
    """Audit §2: on the strict twin a deployment is healthy only when Consul's checks pass, and
    Consul's agent has no mesh client certificate. The check must pass on the TLS port through
    nginx while a caller without a certificate still gets nothing but the check's answer."""
    stack, _driver, app = world
    vault = VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token))
    root = await root_pem(vault, "pki")
    consul = ConsulClient(stack.consul.address)
    job = web_job()
    job["Meta"][keys.MESH_TLS_MTLS] = "true"
    job["TaskGroups"][0]["Services"][0]["Checks"][0]["Path"] = "/health"
    try:
        await app.jobs.register_job(job, enforce_index=None)

        async def ready() -> bool:
            status = await app.statuses.get("default", "web")
            return status is not None and status.phase == "Ready"

        await eventually(ready, what="mtls web Ready", within=90.0)
        stored = await app.jobs.get_job("web", "default")
        assert stored is not None and keys.INJECTED_GROUP_META in stored["TaskGroups"][0]["Meta"]

        # The twin's deployment watcher marks it successful once the allocation has been
        # healthy (every Consul check passing) for MinHealthyTime.
        async def deployed() -> dict[str, Any] | None:
            d = await app.jobs.latest_deployment("web", "default")
            return d if d is not None and d["Status"] != "running" else None

        deployment = await eventually(deployed, what="deployment finished", within=60.0)
        assert (deployment["JobVersion"], deployment["Status"]) == (
            stored["Version"],
            "successful",
        ), deployment.get("StatusDescription")
        # Health may have judged an allocation while its check was still warming up (Consul's
        # initial status is critical); the phase settles on Ready once it looks again.
        await eventually(ready, what="Ready once the deployment is done", within=30.0)

        entries = (await consul.health_service("web")).entries
        assert len(entries) == 1 and keys.TLS_SERVICE_TAG in entries[0].tags
        checks = [c for c in entries[0].checks if c.get("ServiceID")]
        assert checks and all(c["Status"] == "passing" for c in checks), checks
        assert all("hello from web" in c["Output"] for c in checks), "the app's own answer"

        issued = hvac.Client(url=stack.vault.addr, token=stack.vault.root_token).write_data(
            "pki_int/issue/mesh",
            data={"common_name": "api.service.consul", "ttl": "1h"},
        )["data"]
        caller = tmp_path / "caller.pem"
        caller.write_text(f"{issued['certificate']}\n{issued['private_key']}\n")
        anonymous = ssl.create_default_context(cadata=root)
        meshed = ssl.create_default_context(cadata=root)
        meshed.load_cert_chain(str(caller))

        async def get(ctx: ssl.SSLContext, path: str) -> tuple[int, str]:
            url = f"https://web.service.consul:{entries[0].port}{path}"
            resolver = PinnedResolver(entries[0].effective_address)
            connector = aiohttp.TCPConnector(ssl=ctx, resolver=resolver, force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(url) as r,
            ):
                return r.status, await r.text()

        assert (await get(anonymous, "/"))[0] == 400
        assert (await get(anonymous, "/orders"))[0] == 400
        status, body = await get(anonymous, "/health")
        assert (status, body.startswith("hello from web")) == (200, True)
        status, body = await get(meshed, "/orders")
        assert (status, body.startswith("hello from web")) == (200, True)
    finally:
        await consul.close()


async def test_controller_dev_demo_prints_a_curl_that_works_and_ctrl_c_cleans_up() -> None:
    async with controller_dev("--demo", "--nodes", "2", drop_env=("NOMAD_", "VAULT_")) as dev:
        exports = await dev.exports()
        assert list(exports) == [
            "NOMAD_ADDR",
            "CONSUL_HTTP_ADDR",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "MESH_SIDECAR_DRIVER",
            "MESH_NGINX_BIN",
            "MESH_STATUS_URL",
        ]
        async with aiohttp.ClientSession() as s, s.get(exports["MESH_STATUS_URL"]) as r:
            status = await r.json()
        assert status["leading"] is True

        line = await dev.curl_line(90)
        assert any(re.fullmatch(r"web is Ready after [\d.]+s", x) for x in dev.lines)
        assert any("web" in x and "Ready" in x for x in dev.lines)  # the status table
        assert (await run_curl(line)).startswith("hello from web")
        # the client -> web edge: plain HTTP to the client's listener, mTLS between sidecars
        client_line = await dev.curl_line(30)
        assert re.fullmatch(r"curl http://127\.0\.0\.1:\d+/from-client", client_line)
        assert any(x.startswith("client -> web:") for x in dev.lines)

        async def through_client() -> str | None:
            out = await run_curl(client_line)
            return out if out.startswith("hello from web") else None

        # The client's sidecar lists web's PASSING instances: a check that timed out on a
        # loaded machine takes web out of its nginx.conf until the next poll (503 meanwhile).
        await eventually(through_client, within=30, every=1.0, what="client -> web")
        await dev.stop_cleanly()
