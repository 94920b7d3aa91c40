"""The Nomad client over real TLS: verification is on by default, NOMAD_CACERT makes it work,
NOMAD_TLS_SERVER_NAME overrides the name checked, and a failed verification is not retried."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controller.config import NomadSettings
from controller.config.values import reading
from controller.nomad.client import NomadClient
from controller.nomad.errors import TlsVerificationError
from controller.nomad.jobs import NomadJobs

pytestmark = pytest.mark.timeout(30)


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer[0].subject if signer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=signer is None, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer[1] if signer else key, hashes.SHA256())


@dataclass
class TlsServer:
    url: str
    cacert: Path


@pytest_asyncio.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", ca_key, None)
    key = ec.generate_private_key(ec.SECP256R1())
    # valid for a DNS name only, so plain 127.0.0.1 does not match without a server name
    leaf = _cert("nomad.internal", key, (ca, ca_key), [x509.DNSName("server.global.nomad")])
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path = tmp_path / "leaf.key"
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "leaf.pem", key_path)

    async def job(_: web.Request) -> web.Response:
        return web.json_response({"ID": "web"}, headers={"X-Nomad-Index": "5"})

    app = web.Application()
    app.router.add_get("/v1/job/web", job)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_ctx)
    try:
        yield TlsServer(url=f"https://127.0.0.1:{server.port}", cacert=tmp_path / "ca.pem")
    finally:
        await server.close()


def settings(**values: object) -> NomadSettings:
    with reading({}):
        return NomadSettings(**values)  # type: ignore[arg-type]


async def test_verification_is_on_by_default(tls_server: TlsServer) -> None:
    async with NomadClient.from_settings(settings(addr=tls_server.url)) as client:
        with pytest.raises(TlsVerificationError):
            await NomadJobs(client).get_job("web", "default")


async def test_cacert_and_server_name(tls_server: TlsServer) -> None:
    ok = settings(
        addr=tls_server.url,
        cacert=str(tls_server.cacert),
        tls_server_name="server.global.nomad",
        token="secret-token",
    )
    async with NomadClient.from_settings(ok) as client:
        assert await NomadJobs(client).get_job("web", "default") == {"ID": "web"}
        assert "secret-token" not in repr(client)
    wrong_name = settings(addr=tls_server.url, cacert=str(tls_server.cacert))
    async with NomadClient.from_settings(wrong_name) as client:
        with pytest.raises(TlsVerificationError):
            await NomadJobs(client).get_job("web", "default")


async def test_skip_verify_is_explicit(tls_server: TlsServer) -> None:
    async with NomadClient.from_settings(settings(addr=tls_server.url, skip_verify=True)) as c:
        assert await NomadJobs(c).get_job("web", "default") == {"ID": "web"}
