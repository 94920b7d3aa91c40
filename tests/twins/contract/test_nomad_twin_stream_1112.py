"""Contract tests: the Nomad >= 1.11.2 event stream, behind the ``event_stream_hijacked`` knob.

Pinned against command/agent/event_endpoint.go ``EventStream`` at v1.11.3 (1.11.2 wrote a
broken status line, fixed by PR #27586) and nomad/REPORT.md §1.2/§1.5: index and topic
errors are still coded 400s; then the connection is hijacked and ``http.Response{
ContentLength: -1}.Write`` sends ``HTTP/1.1 200 OK`` with ``Connection: close`` (no
chunking, no Content-Length) *before* the ``Event.Stream`` RPC authenticates, so a denial
and every later error are 200 followed by EOF. The default stays the 1.10 stream.
Raw sockets, because the framing is the point.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin

pytestmark = pytest.mark.timeout(30)

HEAD_1112 = (
    b"HTTP/1.1 200 OK\r\n"
    b"Connection: close\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Content-Type: application/json\r\n\r\n"
)


@pytest.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(nodes=1, acl=True, heartbeat_interval=0.2)
    t.faults.event_stream_hijacked = True
    yield t
    await t.stop()


def mgmt(twin: NomadTwin) -> str:
    assert twin.management_token is not None
    return twin.management_token


async def raw_get(
    twin: NomadTwin, path: str, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlparse(twin.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Nomad-Token: {token}\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def token_with(twin: NomadTwin, rules: str) -> dict[str, Any]:
    hdr = {"X-Nomad-Token": mgmt(twin)}
    async with aiohttp.ClientSession(headers=hdr) as http:
        body = {"Name": "p", "Rules": rules}
        async with http.post(f"{twin.url}/v1/acl/policy/p", json=body) as r:
            assert r.status == 200, await r.text()
        async with http.post(
            f"{twin.url}/v1/acl/token", json={"Type": "client", "Policies": ["p"]}
        ) as r:
            assert r.status == 200, await r.text()
            out: dict[str, Any] = await r.json()
            return out


async def test_hijacked_stream_sends_200_by_hand_without_chunking(twin: NomadTwin) -> None:
    reader, writer = await raw_get(twin, "/v1/event/stream?topic=Job", mgmt(twin))
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head == HEAD_1112
        assert await asyncio.wait_for(reader.readline(), 5) == b"{}\n"  # not a chunk size
        hdr = {"X-Nomad-Token": mgmt(twin)}
        job = {
            "ID": "web",
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker"}]}],
        }
        async with (
            aiohttp.ClientSession(headers=hdr) as http,
            http.post(f"{twin.url}/v1/jobs", json={"Job": job}) as r,
        ):
            assert r.status == 200
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b'{"Index":') and line.endswith(b"]}\n")
    finally:
        writer.close()


async def test_denied_token_sees_200_then_eof(twin: NomadTwin) -> None:
    tok = await token_with(twin, 'node { policy = "read" }')
    reader, writer = await raw_get(twin, "/v1/event/stream?topic=Job", tok["SecretID"])
    try:
        raw = await asyncio.wait_for(reader.read(), 5)  # until EOF
        assert raw == HEAD_1112  # no 403, no error text, no body at all
    finally:
        writer.close()


async def test_deleted_token_mid_stream_is_eof_without_the_resubscribe_text(
    twin: NomadTwin,
) -> None:
    tok = await token_with(twin, 'namespace "default" { policy = "read" }')
    reader, writer = await raw_get(twin, "/v1/event/stream?topic=Job", tok["SecretID"])
    try:
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == HEAD_1112
        assert await asyncio.wait_for(reader.readline(), 5) == b"{}\n"
        hdr = {"X-Nomad-Token": mgmt(twin)}
        async with (
            aiohttp.ClientSession(headers=hdr) as http,
            http.delete(f"{twin.url}/v1/acl/token/{tok['AccessorID']}") as r,
        ):
            assert r.status == 200
        rest = await asyncio.wait_for(reader.read(), 5)
        assert b"resubscribe" not in rest and rest.strip(b"{}\n") == b""
    finally:
        writer.close()


async def test_index_errors_are_still_coded_before_the_hijack(twin: NomadTwin) -> None:
    async with (
        aiohttp.ClientSession(headers={"X-Nomad-Token": mgmt(twin)}) as http,
        http.get(f"{twin.url}/v1/event/stream?index=x") as r,
    ):
        assert r.status == 400
        assert await r.text() == (
            'Unable to parse index: strconv.Atoi: parsing "x": invalid syntax'
        )


async def test_default_is_the_1_10_stream_and_the_knob_is_settable_over_http() -> None:
    twin = await start_nomad_twin(nodes=1, acl=True)
    try:
        tok = await token_with(twin, 'node { policy = "read" }')
        async with aiohttp.ClientSession() as http:
            hdr = {"X-Nomad-Token": tok["SecretID"]}
            async with http.get(f"{twin.url}/v1/event/stream?topic=Job", headers=hdr) as r:
                assert (r.status, await r.text()) == (403, "Permission denied")
            admin = {"X-Nomad-Token": mgmt(twin)}
            async with http.get(f"{twin.url}/v1/event/stream", headers=admin) as r:
                assert r.status == 200 and r.headers["Transfer-Encoding"] == "chunked"
            async with http.post(
                f"{twin.url}/_twin/faults", json={"event_stream_hijacked": True}
            ) as r:
                assert (await r.json())["event_stream_hijacked"] is True
        reader, writer = await raw_get(twin, "/v1/event/stream?topic=Job", tok["SecretID"])
        try:
            assert await asyncio.wait_for(reader.read(), 5) == HEAD_1112
        finally:
            writer.close()
    finally:
        await twin.stop()
