"""Checks the Consul twin runs for real: HTTP, HTTPS (TLSSkipVerify, TLSServerName), TCP, TTL,
and Consul's success/failure thresholds, against real loopback servers."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack.consul import ConsulTwin
from devstack.consul.runner import StatusHandler
from tests.support.twins import ConsulTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(30)


@dataclass
class App:
    """A loopback HTTP(S) server whose answer the test changes; it records what it saw."""

    status: int = 200
    seen: list[tuple[int, str]] = field(default_factory=list)  # (answered status, check status)
    headers: list[dict[str, str]] = field(default_factory=list)
    twin: ConsulTwin | None = None
    check_id: str = ""
    port: int = 0

    def count(self, status: int) -> int:
        return sum(1 for s, _ in self.seen if s == status)


async def serve(app: App, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        current = ""
        if app.twin is not None and app.check_id in app.twin.state.checks:
            current = app.twin.state.checks[app.check_id].status
        app.seen.append((app.status, current))
        app.headers.append(dict(request.headers))
        return web.Response(status=app.status, text="all good" if app.status < 300 else "nope")

    web_app = web.Application()
    web_app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    app.port = site.port
    return runner


def self_signed(tmp: Path, name: str) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(min_check_interval=0.02)


async def register(twin: ConsulTwin, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{twin.url}/v1/agent/service/register", data=json.dumps(body)) as r,
    ):
        assert r.status == 200, await r.text()


async def settle(twin: ConsulTwin, check_id: str, status: str) -> str:
    await twin.state.wait_until(lambda: twin.state.checks[check_id].status == status)
    return twin.state.checks[check_id].output


async def test_http_check_passes_with_consul_output_and_headers(twin: ConsulTwin) -> None:
    app = App()
    runner = await serve(app)
    try:
        url = f"http://127.0.0.1:{app.port}/health"
        check = {"HTTP": url, "Interval": "50ms", "Method": "POST", "Header": {"X-Probe": ["1"]}}
        await register(twin, {"ID": "w1", "Name": "web", "Check": check})
        assert twin.state.checks["service:w1"].status == "critical"  # checks start critical
        output = await settle(twin, "service:w1", "passing")
        assert output == f"HTTP POST {url}: 200 OK Output: all good"
        sent = app.headers[0]
        assert (sent["X-Probe"], sent["User-Agent"]) == ("1", "Consul Health Check")
        app.status = 503
        output = await settle(twin, "service:w1", "critical")
        assert output == f"HTTP POST {url}: 503 Service Unavailable Output: nope"
        app.status = 429
        await settle(twin, "service:w1", "warning")
    finally:
        await runner.cleanup()


async def test_http_check_to_a_closed_port_is_critical_with_gos_text(twin: ConsulTwin) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    await register(twin, {"ID": "w1", "Name": "web", "Check": {"HTTP": url, "Interval": "50ms"}})
    await twin.state.wait_until(lambda: twin.state.checks["service:w1"].output != "")
    assert twin.state.checks["service:w1"].output == (
        f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )


async def test_https_check_needs_skip_verify_for_a_self_signed_cert(
    twin: ConsulTwin, tmp_path: Path
) -> None:
    app = App()
    runner = await serve(app, self_signed(tmp_path, "web.service.internal"))
    try:
        url = f"https://127.0.0.1:{app.port}/health"
        base = {"HTTP": url, "Interval": "50ms", "TLSServerName": "web.service.internal"}
        await register(
            twin,
            {
                "ID": "w1",
                "Name": "web",
                "Checks": [
                    {**base, "CheckID": "skip", "TLSSkipVerify": True},
                    {**base, "CheckID": "verify"},
                ],
            },
        )
        assert (await settle(twin, "skip", "passing")).startswith(f"HTTP GET {url}: 200 OK")
        await twin.state.wait_until(lambda: twin.state.checks["verify"].output != "")
        verify = twin.state.checks["verify"]
        assert verify.status == "critical"
        assert verify.output == (
            f'Get "{url}": tls: failed to verify certificate: '
            "x509: certificate signed by unknown authority"
        )
    finally:
        await runner.cleanup()


async def test_tcp_check_passes_while_listening_and_fails_after(twin: ConsulTwin) -> None:
    app = App()
    runner = await serve(app)
    addr = f"127.0.0.1:{app.port}"
    await register(twin, {"ID": "db", "Name": "db", "Check": {"TCP": addr, "Interval": "50ms"}})
    assert await settle(twin, "service:db", "passing") == f"TCP connect {addr}: Success"
    await runner.cleanup()
    output = await settle(twin, "service:db", "critical")
    assert output == f"dial tcp {addr}: connect: connection refused"


async def test_success_before_passing_counts_after_a_failure(twin: ConsulTwin) -> None:
    app = App(status=500, check_id="service:w1")
    app.twin = twin
    runner = await serve(app)
    try:
        check = {
            "HTTP": f"http://127.0.0.1:{app.port}/",
            "Interval": "30ms",
            "SuccessBeforePassing": 3,
        }
        await register(twin, {"ID": "w1", "Name": "web", "Check": check})
        await eventually(lambda: app.count(500) >= 1)
        app.status = 200
        await settle(twin, "service:w1", "passing")
        await eventually(lambda: app.count(200) >= 4)
        # What the check showed when each success was served (the previous results applied):
        seen = [status for code, status in app.seen if code == 200]
        assert seen[:3] == ["critical", "critical", "critical"]
        assert seen[3] == "passing"
    finally:
        await runner.cleanup()


async def test_failures_before_critical_tolerates_blips(twin: ConsulTwin) -> None:
    app = App(status=200, check_id="service:w1")
    app.twin = twin
    runner = await serve(app)
    try:
        check = {
            "HTTP": f"http://127.0.0.1:{app.port}/",
            "Interval": "30ms",
            "FailuresBeforeCritical": 3,
            "SuccessBeforePassing": 2,
        }
        await register(twin, {"ID": "w1", "Name": "web", "Check": check})
        await settle(twin, "service:w1", "passing")  # the first result counts at once
        assert app.count(200) == 1
        app.status = 500
        await settle(twin, "service:w1", "critical")
        await eventually(lambda: app.count(500) >= 4)
        seen = [status for code, status in app.seen if code == 500]
        assert seen[:3] == ["passing", "passing", "passing"]
        assert seen[3] == "critical"
    finally:
        await runner.cleanup()


def test_status_handler_thresholds() -> None:
    h = StatusHandler(
        success_before_passing=2, failures_before_warning=1, failures_before_critical=3
    )
    assert h.result("passing") == "passing"  # counters start at their thresholds
    assert [h.result("critical") for _ in range(3)] == ["warning", "warning", "critical"]
    assert [h.result("passing") for _ in range(2)] == [None, "passing"]


async def test_ttl_check_expires_to_critical_with_last_output(twin: ConsulTwin) -> None:
    await register(twin, {"ID": "job", "Name": "job", "Check": {"TTL": "100ms"}})
    async with aiohttp.ClientSession() as s:
        url = f"{twin.url}/v1/agent/check/pass/service:job?note=alive"
        async with s.put(url) as r:
            assert r.status == 200
    assert twin.state.checks["service:job"].status == "passing"
    output = await settle(twin, "service:job", "critical")
    assert output == "TTL expired (last output before timeout follows): alive"
