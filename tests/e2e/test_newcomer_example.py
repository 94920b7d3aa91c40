"""The README's "Mesh your own job" walk-through, step by step, so the README cannot rot.

On `controller dev --demo` (what `make dev` runs): `controllerctl render --diff` of
examples/hello-mesh.json shows the sidecar; the file is submitted with a POST to the printed
NOMAD_ADDR, as the README's curl does; `controllerctl status` turns Ready; the service answers
over TLS on the port Consul advertises, verified against the root CA read from Vault; then the
file is submitted again without `mesh.tls` and the job is plain again (no sidecar, the service
on its own port, no status record). Ctrl-C leaves nothing running.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.dev_process import controller_dev
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-mesh.json"
CTL = str(Path(sys.executable).with_name("controllerctl"))


async def ctl(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        CTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def submit(http: aiohttp.ClientSession, nomad: str, document: dict[str, Any]) -> None:
    async with http.post(f"{nomad}/v1/jobs", json=document) as resp:
        assert resp.status == 200, await resp.text()


async def hello_rows(env: dict[str, str]) -> list[dict[str, Any]]:
    _, out = await ctl(env, "status", "--job", "hello", "-o", "json")
    rows: list[dict[str, Any]] = json.loads(out)["rows"]
    return rows


async def test_the_readme_walkthrough_meshes_and_unmeshes_the_example() -> None:
    document = json.loads(EXAMPLE.read_text())
    async with (
        controller_dev("--demo", "--nodes", "1", drop_env=("NOMAD_", "VAULT_", "CONSUL_")) as dev,
        aiohttp.ClientSession() as http,
    ):
        exports = await dev.exports()
        env = {**_base_env(), **exports}
        await dev.curl_line(120)  # the demo is done: web is Ready

        code, diff = await ctl(env, "render", "--diff", str(EXAMPLE))
        assert code == 0 and '+                        "Name": "mesh-tls-proxy",' in diff

        await submit(http, exports["NOMAD_ADDR"], document)

        async def ready() -> list[dict[str, Any]] | None:
            rows = await hello_rows(env)
            return rows if rows and all(r["phase"] == "Ready" for r in rows) else None

        (row,) = await eventually(ready, within=90, every=1.0, what="hello Ready in status")
        assert row["mode"] == "strict" and row["injected"] == "current"

        address, port = await tls_instance(http, exports["CONSUL_HTTP_ADDR"], tls=True)
        async with http.get(f"{exports['VAULT_ADDR']}/v1/pki/ca/pem") as resp:
            trust = ssl.create_default_context(cadata=await resp.text())
        reader, writer = await asyncio.open_connection(
            address, port, ssl=trust, server_hostname="hello.service.consul"
        )
        writer.write(b"GET / HTTP/1.0\r\nHost: hello.service.consul\r\n\r\n")
        answer = (await reader.read()).decode()
        writer.close()
        assert answer.startswith("HTTP/1.1 200") and "\r\n\r\nhello from " in answer

        plain = copy.deepcopy(document)
        del plain["Job"]["Meta"]["mesh.tls"]
        await submit(http, exports["NOMAD_ADDR"], plain)

        async def unmeshed() -> bool:
            _, out = await ctl(env, "explain", "hello")
            return "none (the controller has not recorded this job)" in out and not (
                await hello_rows(env)
            )

        await eventually(unmeshed, within=60, every=1.0, what="hello plain, its record gone")
        async with http.get(f"{exports['NOMAD_ADDR']}/v1/job/hello") as resp:
            job = await resp.json()
        assert [t["Name"] for t in job["TaskGroups"][0]["Tasks"]] == ["app"]
        await tls_instance(http, exports["CONSUL_HTTP_ADDR"], tls=False)

        await dev.stop_cleanly()


async def tls_instance(http: aiohttp.ClientSession, consul: str, *, tls: bool) -> tuple[str, int]:
    """The passing `hello` instance Consul advertises, once it is (or is no longer) the TLS
    registration (tag mesh-tls)."""

    async def find() -> tuple[str, int] | None:
        async with http.get(f"http://{consul}/v1/health/service/hello?passing") as resp:
            entries = await resp.json()
        for entry in entries:
            service = entry["Service"]
            if ("mesh-tls" in (service.get("Tags") or [])) == tls:
                return str(service["Address"]), int(service["Port"])
        return None

    found: tuple[str, int] = await eventually(
        find, within=60, every=0.5, what=f"hello in Consul, tls={tls}"
    )
    return found


def _base_env() -> dict[str, str]:
    """PATH and the like, without any NOMAD_/CONSUL_/VAULT_ of the shell running the tests."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "CONSUL_", "VAULT_"))
    }
