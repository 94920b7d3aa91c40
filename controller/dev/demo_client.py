"""The demo's plaintext caller: `client` calls `web` through its own sidecar (`mesh.tls.upstreams`).

`client` is an old app that knows nothing of TLS: it GETs ``http://127.0.0.1:<port>/`` every few
seconds and prints what it got. Its group meta ``mesh.tls.upstreams = "web:<port>"`` makes the
controller give it a sidecar that listens there and carries each request to a TLS instance of
`web` over mTLS, presenting the client's own leaf (``client.<domain>``, a pure client is named
after its job). `web` becomes mTLS with ``mesh.tls.allow = "client"``, so only this caller gets
past its sidecar. The demo then proves the edge from outside with a plain ``curl`` on the
client's listener.

The listener is on the loopback of the client's node, in host mode reserved as a static port
(one client allocation per node). On the devstack every simulated node shares the host's
127.0.0.1, so the demo runs one client allocation and a curl on this host reaches it.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import sys
import time
from typing import Any

import aiohttp

from controller.dev.demo import NS
from crds_equivalent import keys

CLIENT = "client"
DEMO_UPSTREAM_PORT = 18080  # below Nomad's dynamic range (20000-32000): never a dynamic port
LISTEN_HOST = "127.0.0.1"
CLIENT_PATH = "/from-client"

# Calls web through the sidecar every 5 s, plain HTTP, and prints the answer (`alloc logs`).
CLIENT_APP = r"""
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/from-client"
try:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                print(r.status, r.read().decode().strip(), flush=True)
        except Exception as exc:
            print("call failed:", exc, flush=True)
        time.sleep(5)
except KeyboardInterrupt:
    pass
"""


def upstream_port(preferred: int = DEMO_UPSTREAM_PORT) -> int:
    """``preferred`` if nothing on this host holds it, else a free loopback port: the demo's
    listener must bind, and another devstack (or anything else) may already hold 18080."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # as nginx binds: a closed connection's TIME_WAIT does not hold the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LISTEN_HOST, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free loopback port")


def upstream_entry(service: str, port: int, native: bool) -> str:
    """One `mesh.tls.upstreams` entry; a group without services defaults to Consul's catalog,
    so without Consul the entry names Nomad's."""
    return f"{service}:{port}@nomad" if native else f"{service}:{port}"


def client_job(port: int, native: bool = False, python: str = sys.executable) -> dict[str, Any]:
    """The plaintext caller of `web`: one allocation (see the module docstring), no service."""
    return {
        "ID": CLIENT,
        "Name": CLIENT,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": CLIENT,
                "Count": 1,
                "Meta": {
                    keys.MESH_TLS: "true",
                    keys.MESH_TLS_UPSTREAMS: upstream_entry("web", port, native),
                },
                "Tasks": [
                    {
                        "Name": "call",
                        "Driver": "raw_exec",
                        "Config": {"command": python, "args": ["-u", "-c", CLIENT_APP, str(port)]},
                        "KillTimeout": 3 * NS,
                        "Resources": {"CPU": 50, "MemoryMB": 64},
                    }
                ],
            }
        ],
    }


def upstream_url(port: int) -> str:
    return f"http://{LISTEN_HOST}:{port}{CLIENT_PATH}"


def upstream_curl(port: int) -> str:
    """The printed proof of the client -> web edge: plain HTTP to the client's listener."""
    return shlex.join(["curl", upstream_url(port)])


async def wait_upstream(port: int, within: float) -> str:
    """Poll the client's listener until the sidecar carries a request to `web` (200); its body.
    The sidecar starts with the allocation, and its nginx.conf lists web only once the catalog
    has a TLS instance (503 until then)."""
    deadline = time.monotonic() + within
    last = "nothing listening yet"
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            try:
                async with session.get(upstream_url(port)) as r:
                    body = await r.text()
                    if r.status == 200:
                        return body
                    last = f"{r.status} {body.strip()}"
            except aiohttp.ClientError as exc:
                last = str(exc) or type(exc).__name__
            if time.monotonic() > deadline:
                raise TimeoutError(f"client's listener 127.0.0.1:{port} not through: {last}")
            await asyncio.sleep(0.5)
