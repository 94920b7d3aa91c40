"""A throw-away X.509 PKI made with cryptography, and real TLS listeners on loopback.

The prober, trust and health tests need certificates with exact validity windows, issuers and
key ids, and servers that present them in a real handshake; making them here keeps those tests
free of OpenBao where the issuer does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)  # validity windows are relative to the start of the session


@dataclass
class Ca:
    """A certificate and its key: a CA when signing, a leaf when served."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    subject: str,
    signer: Ca | None,
    *,
    ca: bool,
    sans: tuple[str, ...] = (),
    start: dt.datetime = NOW - dt.timedelta(hours=1),
    end: dt.datetime = NOW + dt.timedelta(hours=71),
) -> Ca:
    """A certificate for ``subject`` signed by ``signer`` (self-signed when None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name = signer.cert.subject if signer else _name(subject)
    signing_key = signer.key if signer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), False
        )
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    return Ca(builder.sign(signing_key, hashes.SHA256()), key)


def server_context(tmp: Path, leaf: Ca, chain: list[Ca]) -> ssl.SSLContext:
    """A server context presenting ``leaf`` and ``chain``, its key written 0600 under ``tmp``."""
    cert_file, key_file = tmp / f"{id(leaf)}-cert.pem", tmp / f"{id(leaf)}-key.pem"
    cert_file.write_text(leaf.pem + "".join(c.pem for c in chain))
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            leaf.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        await reader.read(1)
    writer.close()


@contextlib.asynccontextmanager
async def serving(
    ctx: ssl.SSLContext | None, handler: Callable[..., object] = _hold
) -> AsyncIterator[int]:
    """Listen on a free loopback port (TLS when ``ctx``); yield the port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx)  # type: ignore[arg-type]
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
