"""End to end without Consul: `controller dev --no-consul --demo`, run the way a developer runs
it, on the devstack with real OpenBao, real processes and real nginx.

The demo's `web` registers with `provider = "nomad"`. The curl the command prints must reach
`web` over HTTPS verified against the mesh root, on the address and TLS port that Nomad's own
catalog advertises, and Nomad's client must report the native http check on that TLS port as
passing. No Consul address is exported, and none is running.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from tests.support.dev_process import controller_dev, run_curl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


async def get(url: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_controller_dev_no_consul_demo_serves_through_nomads_catalog() -> None:
    async with controller_dev(
        "--no-consul", "--demo", "--nodes", "1", drop_env=("NOMAD_", "VAULT_", "CONSUL_")
    ) as dev:
        exports = await dev.exports()
        assert "CONSUL_HTTP_ADDR" not in exports
        assert {"NOMAD_ADDR", "VAULT_ADDR", "MESH_STATUS_URL"} <= set(exports)

        line = await dev.curl_line(120)
        assert any(re.fullmatch(r"web is Ready after [\d.]+s", x) for x in dev.lines)
        assert (await run_curl(line)).startswith("hello from web")

        # the curl's address and port are the TLS registration in Nomad's own catalog
        resolved = re.search(r"--resolve \S+:(\d+):(\S+)", line)
        assert resolved is not None
        port, address = int(resolved.group(1)), resolved.group(2)
        nomad = exports["NOMAD_ADDR"]
        regs = await get(f"{nomad}/v1/service/web")
        tls = [r for r in regs if r["Port"] == port and r["Address"] == address]
        assert len(tls) == 1 and "mesh-tls" in tls[0]["Tags"]
        assert len(regs) == 1  # strict: the plaintext registration is retired
        # and Nomad's client reports the native http check on that TLS port as passing
        alloc_id = tls[0]["AllocID"]
        results = await get(f"{nomad}/v1/client/allocation/{alloc_id}/checks")
        assert [(r["Check"], r["Status"], r["Output"]) for r in results.values()] == [
            ("web-http", "success", "nomad: http ok")
        ]
        job = await get(f"{nomad}/v1/job/web")
        (check,) = job["TaskGroups"][0]["Services"][0]["Checks"]
        assert (check["PortLabel"], check["Protocol"]) == ("mesh_tls_http", "https")

        # the client -> web edge, with web found in Nomad's catalog by the client's sidecar
        client_line = await dev.curl_line(30)
        assert (await run_curl(client_line)).startswith("hello from web")
        client = await get(f"{nomad}/v1/job/client")
        upstreams = client["TaskGroups"][0]["Meta"]["mesh.tls.upstreams"]
        assert upstreams.endswith("@nomad"), upstreams

        await dev.stop_cleanly()
