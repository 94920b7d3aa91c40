"""End to end without Consul: `controller dev --no-consul --demo`, run the way a developer runs
it, on the devstack with real OpenBao, real processes and real nginx.

The demo's `web` registers with `provider = "nomad"`. The curl the command prints must reach
`web` over HTTPS verified against the mesh root, on the address and TLS port that Nomad's own
catalog advertises, and Nomad's client must report the native http check on that TLS port as
passing. No Consul address is exported, and none is running.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

CONTROLLER = str(Path(sys.executable).with_name("controller"))


async def read_line(stream: asyncio.StreamReader, within: float) -> str:
    line = await asyncio.wait_for(stream.readline(), within)
    if not line:
        raise AssertionError("controller dev ended its output early")
    return line.decode().rstrip("\n")


async def get(url: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_controller_dev_no_consul_demo_serves_through_nomads_catalog() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "VAULT_", "CONSUL_"))}
    proc = await asyncio.create_subprocess_exec(
        CONTROLLER,
        "dev",
        "--no-consul",
        "--demo",
        "--nodes",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or lines[-1] != "controller dev ready":
            lines.append(await read_line(proc.stdout, 60))
        exports = dict(
            re.fullmatch(r"export ([A-Z_]+)=(\S+)", line).groups()  # type: ignore[union-attr]
            for line in lines[:-1]
        )
        assert "CONSUL_HTTP_ADDR" not in exports
        assert {"NOMAD_ADDR", "VAULT_ADDR", "MESH_STATUS_URL"} <= set(exports)

        while not (line := await read_line(proc.stdout, 120)).startswith("curl "):
            lines.append(line)
        assert any(re.fullmatch(r"web is Ready after [\d.]+s", x) for x in lines)
        curl = await asyncio.create_subprocess_exec(
            *shlex.split(line), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(curl.communicate(), 30)
        assert curl.returncode == 0, err.decode()
        assert out.decode().startswith("hello from web")

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

        children = psutil.Process(proc.pid).children(recursive=True)
        assert any(c.name().startswith("nginx") for c in children)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
