"""TLS builders against a real local TLS server with a test CA (real handshakes, loopback only)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from structlog.testing import capture_logs

from controller import tls as tls_mod
from controller.config import ConsulSettings, NomadSettings, Settings, VaultSettings
from controller.tls import TlsConfigError, client_tls, requests_kwargs, ssl_context

pytestmark = pytest.mark.timeout(30)

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Opts:
    cacert: str | None = None
    capath: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_server_name: str | None = None
    skip_verify: bool = False


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)


@dataclass
class Pki:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Test Root", ca_key, None, ca=True)
    _write(d / "ca", ca, None)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _issue(
        "nomad.test",
        srv_key,
        (ca, ca_key),
        sans=[x509.DNSName("nomad.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    _write(d / "server", srv, srv_key)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _issue("controller", cli_key, (ca, ca_key), usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    _write(d / "client", cli, cli_key)
    (d / "capath").mkdir()
    (d / "capath" / "root.crt").write_bytes((d / "ca.pem").read_bytes())
    (d / "capath" / "README").write_text("not a certificate\n")
    return Pki(d)


Serve = Callable[[bool], Awaitable[int]]


@pytest.fixture
async def server(pki: Pki) -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(require_client_cert: bool = False) -> int:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.path("server.pem"), pki.path("server.key"))
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=pki.path("ca.pem"))

        async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"ok\n")
            try:
                await w.drain()
                w.close()
                await w.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        servers.append(srv)
        return int(srv.sockets[0].getsockname()[1])

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


async def talk(port: int, ctx: ssl.SSLContext, hostname: str | None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=hostname or "127.0.0.1"
    )
    try:
        return await reader.readexactly(3)
    finally:
        writer.close()


HANDSHAKE_FAILURES = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)


async def test_verification_is_on_by_default_and_unknown_cas_are_refused(server: Serve) -> None:
    port = await server(False)
    tls = client_tls(Opts(), service="nomad")
    assert tls.context.verify_mode == ssl.CERT_REQUIRED
    assert tls.context.check_hostname
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.verify
    with pytest.raises(ssl.SSLCertVerificationError):
        await talk(port, tls.context, "nomad.test")


async def test_ca_file_verifies_the_server_and_its_name(pki: Pki, server: Serve) -> None:
    port = await server(False)
    ctx = ssl_context(Opts(cacert=pki.path("ca.pem")), service="nomad")
    assert await talk(port, ctx, "nomad.test") == b"ok\n"
    assert await talk(port, ctx, "127.0.0.1") == b"ok\n"  # IP SAN
    with pytest.raises(ssl.SSLCertVerificationError):
        await talk(port, ctx, "other.test")


async def test_server_name_override_is_sent_and_verified(pki: Pki, server: Serve) -> None:
    port = await server(False)
    tls = client_tls(Opts(cacert=pki.path("ca.pem"), tls_server_name="nomad.test"), service="x")
    assert tls.server_hostname == "nomad.test"
    assert await talk(port, tls.context, tls.server_hostname) == b"ok\n"
    wrong = client_tls(Opts(cacert=pki.path("ca.pem"), tls_server_name="evil.test"), service="x")
    with pytest.raises(ssl.SSLCertVerificationError):
        await talk(port, wrong.context, wrong.server_hostname)


async def test_ca_directory_loads_every_pem_without_rehash_links(pki: Pki, server: Serve) -> None:
    port = await server(False)
    ctx = ssl_context(Opts(capath=pki.path("capath")), service="vault")
    assert await talk(port, ctx, "nomad.test") == b"ok\n"


async def test_client_certificate_is_presented(pki: Pki, server: Serve) -> None:
    port = await server(True)
    without = ssl_context(Opts(cacert=pki.path("ca.pem")), service="consul")
    with pytest.raises(HANDSHAKE_FAILURES):
        await talk(port, without, "nomad.test")
    with_cert = ssl_context(
        Opts(
            cacert=pki.path("ca.pem"),
            client_cert=pki.path("client.pem"),
            client_key=pki.path("client.key"),
        ),
        service="consul",
    )
    assert await talk(port, with_cert, "nomad.test") == b"ok\n"


async def test_skip_verify_only_when_asked_and_warns_once(
    server: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_mod, "_warned_skip", set())
    port = await server(False)
    with capture_logs() as logs:
        tls = client_tls(Opts(skip_verify=True), service="nomad")
        client_tls(Opts(skip_verify=True), service="nomad")
        client_tls(Opts(skip_verify=True), service="vault")
    assert not tls.verify
    assert await talk(port, tls.context, "whatever.test") == b"ok\n"
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [e["service"] for e in warnings] == ["nomad", "vault"]


def test_works_with_each_settings_group(pki: Pki) -> None:
    env = {
        "NOMAD_CACERT": pki.path("ca.pem"),
        "VAULT_CAPATH": pki.path("capath"),
        "VAULT_TLS_SERVER_NAME": "vault.test",
        "CONSUL_HTTP_SSL_VERIFY": "false",
        "CONSUL_CLIENT_CERT": pki.path("client.pem"),
        "CONSUL_CLIENT_KEY": pki.path("client.key"),
    }
    s = Settings.from_env(env)
    groups: list[NomadSettings | VaultSettings | ConsulSettings] = [s.nomad, s.vault, s.consul]
    built = [client_tls(g, service=n) for g, n in zip(groups, ["n", "v", "c"], strict=True)]
    assert [b.verify for b in built] == [True, True, False]
    assert built[1].server_hostname == "vault.test"
    assert built[2].context.verify_mode == ssl.CERT_NONE


def test_unusable_files_fail_loudly(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match=r"missing\.pem"):
        client_tls(Opts(cacert=str(tmp_path / "missing.pem")), service="nomad")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TlsConfigError, match="no PEM certificates"):
        client_tls(Opts(capath=str(tmp_path / "empty")), service="nomad")
    with pytest.raises(TlsConfigError, match="client key is set"):
        client_tls(Opts(client_key=pki.path("client.key")), service="nomad")
    with pytest.raises(TlsConfigError, match="client certificate"):
        client_tls(
            Opts(client_cert=pki.path("client.pem"), client_key=pki.path("server.key")),
            service="nomad",
        )


def test_world_readable_client_key_is_warned_about_without_its_content(
    pki: Pki, tmp_path: Path
) -> None:
    loose = tmp_path / "loose.key"
    loose.write_bytes(Path(pki.path("client.key")).read_bytes())
    loose.chmod(0o644)
    with capture_logs() as logs:
        client_tls(Opts(client_cert=pki.path("client.pem"), client_key=str(loose)), service="v")
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["path"] == str(loose)
    assert "PRIVATE KEY" not in repr(logs)


def test_requests_kwargs(pki: Pki) -> None:
    assert requests_kwargs(Opts()) == {"verify": True}
    assert requests_kwargs(Opts(skip_verify=True, cacert="x")) == {"verify": False}
    assert requests_kwargs(Opts(cacert="ca.pem", capath="d")) == {"verify": "ca.pem"}
    assert requests_kwargs(Opts(capath="d")) == {"verify": "d"}
    assert requests_kwargs(Opts(client_cert="c.pem", client_key="k.pem"))["cert"] == (
        "c.pem",
        "k.pem",
    )
