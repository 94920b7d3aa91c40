"""Issue 18 end to end: both ends of a meshed call through the real controller.

The devstack (Nomad and Consul twins, the raw_exec executor), real OpenBao, real nginx, real
processes; the controller runs in-process and injects every job itself. `web` (the demo's app)
is mTLS with ``mesh.tls.allow = "client"``; `client` and `intruder` are plaintext callers
with ``mesh.tls.upstreams = "web:<port>"``, each on its own port (on the devstack every
simulated node shares this host's 127.0.0.1, see devstack/README.md, Deviations).

Proven from outside, as an operator would: a plain GET on the client's listener reaches `web`
(200, the app's own answer); the same from `intruder` is refused by web's sidecar (403) and
logged there with the caller's verified subject and the TLS version of the wire between the
two sidecars (TLSv1.3; the caller's certificate verified, the server's verified by the
caller's sidecar, else no request would reach the log); moving web's allocation to the other
node keeps the client working after its sidecar's template re-renders, with no restart of
that sidecar and no new client allocation.

The client is a pure client: it is Ready once its upstream edge is healthy (UpstreamsHealthy).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller.app import App
from controller.dev.demo import web_job
from controller.dev.demo_client import client_job
from crds_equivalent import keys
from devstack.executor import RawExecDriver
from devstack.sidecar_render import free_port
from devstack.up import Devstack
from tests.support.e2e_stack import world
from tests.support.waiting import eventually

__all__ = ["world"]  # the fixture, used by name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ALLOC_ID = re.compile(r"hello from web \(([0-9a-f]{8})\)")


def caller(job_id: str, port: int) -> dict[str, Any]:
    """A plaintext caller of web like the demo's client, under another job ID."""
    job = client_job(port)
    job["ID"] = job["Name"] = job_id
    job["TaskGroups"][0]["Name"] = job_id
    return job


def served_by(body: str | None) -> str:
    """The 8-character allocation ID web's answer names ("" for any other answer)."""
    seen = ALLOC_ID.match(body or "")
    return seen[1] if seen else ""


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with session.get(url) as r:
            return r.status, await r.text()
    except aiohttp.ClientError as exc:
        return 0, str(exc)


async def running(app: App, job_id: str) -> list[dict[str, Any]]:
    allocs = await app.jobs.job_allocations(job_id, "default")
    return [a for a in allocs if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]


def sidecar_log(stack: Devstack, alloc_id: str) -> list[dict[str, Any]]:
    """The JSON lines of a sidecar's stdout (what ``nomad alloc logs`` shows)."""
    path = Path(stack.nomad.client.alloc_root) / alloc_id / "alloc" / "logs"
    text = (path / f"{keys.SIDECAR_TASK}.stdout.0").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_plaintext_callers_reach_an_mtls_server_through_their_sidecars_by_allow_list(
    world: tuple[Devstack, RawExecDriver, App],
) -> None:
    stack, driver, app = world
    client_port, intruder_port = free_port(), free_port()
    await app.jobs.register_job(web_job(callers=["client"]), enforce_index=None)
    await app.jobs.register_job(client_job(client_port), enforce_index=None)
    await app.jobs.register_job(caller("intruder", intruder_port), enforce_index=None)
    client_url = f"http://127.0.0.1:{client_port}/from-client"
    intruder_url = f"http://127.0.0.1:{intruder_port}/orders"

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def answered(url: str, status: int) -> str | None:
            got, body = await get(session, url)
            return body if got == status else None

        body = await eventually(
            lambda: answered(client_url, 200), what="client -> web", within=60, every=0.25
        )
        (first_web,) = await running(app, "web")
        assert served_by(body) and first_web["ID"].startswith(served_by(body))

        denied = await eventually(
            lambda: answered(intruder_url, 403), what="403", within=30, every=0.25
        )
        assert denied is not None and "hello from web" not in denied

        # nginx logs after it answered, and the line reaches the file through the executor's
        # log pipe: wait for it rather than read the file the moment the 403 arrives
        async def logged() -> list[dict[str, Any]] | None:
            found = [x for x in sidecar_log(stack, first_web["ID"]) if x.get("caller")]
            return found or None

        lines = await eventually(logged, what="the denial in web's sidecar log", within=10)
        assert lines[-1] | {"time": "", "client": ""} == {
            "time": "",
            "client": "",
            "event": "mesh.tls.allow denied",
            "caller": "CN=intruder.service.consul",
            "verify": "SUCCESS",
            "tls": "TLSv1.3",
            "request": "GET /orders HTTP/1.1",
            "status": "403",
        }
        assert not any("client" in x["caller"] for x in lines)  # the allowed caller is not

        # a pure client is Ready once its upstream edge is healthy
        client = await app.jobs.get_job("client", "default")
        assert client is not None
        assert keys.INJECTED_GROUP_META in client["TaskGroups"][0]["Meta"]

        async def client_ready() -> Any:
            status = await app.statuses.get("default", "client")
            if status is None or status.phase.value != "Ready":
                return None
            return status

        ready = await eventually(client_ready, what="client Ready", within=60, every=0.5)
        assert [(e.service, e.state) for e in ready.edges] == [("web", "healthy")]

        # move web: Nomad places a replacement (on the other node) and stops the old one
        (client_alloc,) = await running(app, "client")
        proxy_pid = driver.pid(client_alloc["ID"], keys.SIDECAR_TASK)
        nomad = stack.nomad.url
        async with session.post(f"{nomad}/v1/allocation/{first_web['ID']}/stop") as r:
            assert r.status == 200

        async def moved() -> str | None:
            body = await answered(client_url, 200)
            web_alloc = served_by(body)
            return web_alloc if web_alloc and not first_web["ID"].startswith(web_alloc) else None

        moved_to = await eventually(moved, what="client -> the moved web", within=40, every=0.25)
        (second_web,) = await running(app, "web")
        assert second_web["ID"] != first_web["ID"]
        assert second_web["NodeID"] != first_web["NodeID"]
        assert moved_to is not None and second_web["ID"].startswith(moved_to)
        # one re-render and a reload: the same client allocation and the same nginx master
        assert [a["ID"] for a in await running(app, "client")] == [client_alloc["ID"]]
        assert driver.pid(client_alloc["ID"], keys.SIDECAR_TASK) == proxy_pid
