"""The controller's own endpoints, on a real running controller (Nomad twin with ACLs).

- /status and /metrics bind loopback by default; a wider address needs an explicit setting.
- Neither /status nor any other endpoint reveals the Nomad or Vault token.
- Oversize requests are refused, and a slowloris client (a request trickled byte by byte) is
  disconnected once the header timeout has passed, without stalling anyone else.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from controller.config import ConfigError, Settings
from devstack.nomad import start_nomad_twin
from devstack.testing import running, settings_for

pytestmark = pytest.mark.timeout(60)

VAULT_TOKEN = "hvs.CAESIJust-a-test-token-that-must-never-leak-0123456789"


def test_loopback_by_default_and_wider_only_when_asked() -> None:
    assert Settings.from_env({}).controller.http_addr == "127.0.0.1:9464"
    with pytest.raises(ConfigError, match="MESH_HTTP_ALLOW_PUBLIC"):
        Settings.from_env({"MESH_HTTP_ADDR": "0.0.0.0:9464"})
    with pytest.raises(ConfigError):
        Settings.from_env({"MESH_HTTP_ADDR": "10.1.2.3:9464"})
    wide = Settings.from_env({"MESH_HTTP_ADDR": "0.0.0.0:9464", "MESH_HTTP_ALLOW_PUBLIC": "true"})
    assert wide.controller.http_host_port == ("0.0.0.0", 9464)


async def test_endpoints_hide_tokens_refuse_oversize_and_drop_slowloris() -> None:
    twin = await start_nomad_twin(nodes=1, acl=True, heartbeat_interval=0.2)
    token = twin.management_token
    assert token
    try:
        settings = settings_for(twin, token, VAULT_TOKEN=VAULT_TOKEN)
        async with running(settings) as (app, _):
            assert app.http.host == "127.0.0.1"
            base = app.http.url
            async with aiohttp.ClientSession() as http:
                for path in ("/", "/status", "/metrics", "/healthz", "/readyz"):
                    async with http.get(base + path) as resp:
                        body = await resp.text()
                        assert resp.status in (200, 503), path
                        assert token not in body and VAULT_TOKEN not in body, path
                        assert token[:8] not in body, path
                async with http.post(base + "/status", data=b"x" * 100_000) as resp:
                    assert resp.status in (405, 413)
                async with http.get(base + "/status", headers={"X-Big": "y" * 20_000}) as resp:
                    assert resp.status in (400, 431)

                # Slowloris: a request line trickled one byte per 0.5 s.
                reader, writer = await asyncio.open_connection(app.http.host, app.http.port)
                started = time.monotonic()
                closed_after = None
                for byte in b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                    writer.write(bytes([byte]))
                    try:
                        await writer.drain()
                        data = await asyncio.wait_for(reader.read(1024), 0.5)
                    except TimeoutError:
                        continue
                    except ConnectionError:
                        data = b""
                    if not data or b"HTTP/1.1 4" in data:
                        closed_after = time.monotonic() - started
                        break
                writer.close()
                assert closed_after is not None, "the trickling client was never dropped"
                limit = app.http.limits.header_timeout
                assert closed_after <= limit + 2.0

                async with http.get(base + "/healthz") as resp:  # everyone else was served
                    assert resp.status == 200
    finally:
        await twin.stop()
