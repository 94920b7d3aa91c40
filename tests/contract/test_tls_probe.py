"""The TLS prober against real TLS servers: a cryptography-made mesh PKI and OpenBao's own.

Each case is a real handshake on loopback: good chain, wrong name, expired leaf, a CA the mesh
does not know, a sidecar that forgot its intermediate, connection refused, a plaintext port,
and the bounded concurrency. The OpenBao case issues a leaf from the bootstrapped mesh role and
checks that the probe's issuer identity (AKI) is the Vault default issuer's key id.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from pathlib import Path

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.tlsprobe import (
    CertProblem,
    ProbeOutcome,
    ProbeTarget,
    TlsProber,
    subject_key_id,
)
from controller.vault import VaultClient, VaultConnection, bootstrap_pki, read_issuer
from controller.vault.trust import VaultTrust
from devstack.vault import OpenBao
from tests.support.x509 import NOW, Ca, issue, server_context, serving

pytestmark = pytest.mark.timeout(60)

SNI = "web.service.consul"


@pytest.fixture(scope="module")
def pki() -> dict[str, Ca]:
    root = issue("Mesh Root", None, ca=True, end=NOW + dt.timedelta(days=3650))
    inter = issue("Mesh Intermediate", root, ca=True, end=NOW + dt.timedelta(days=1800))
    other_root = issue("Somebody Else", None, ca=True, end=NOW + dt.timedelta(days=3650))
    return {
        "root": root,
        "int": inter,
        "other_root": other_root,
        "good": issue(SNI, inter, ca=False, sans=(SNI,)),
        "expired": issue(
            SNI,
            inter,
            ca=False,
            sans=(SNI,),
            start=NOW - dt.timedelta(days=3),
            end=NOW - dt.timedelta(hours=1),
        ),
        "foreign": issue(SNI, other_root, ca=False, sans=(SNI,)),
    }


def _target(port: int, name: str = SNI) -> ProbeTarget:
    return ProbeTarget("127.0.0.1", port, name)


async def test_good_chain_is_verified_and_described(tmp_path: Path, pki: dict[str, Ca]) -> None:
    good = pki["good"]
    async with serving(server_context(tmp_path, good, [pki["int"]])) as port:
        result = await TlsProber(timeout=2).probe(_target(port), pki["root"].pem)
    assert result.outcome is ProbeOutcome.OK, result.detail
    assert result.leaf is not None
    assert result.leaf.not_after == good.cert.not_valid_after_utc
    assert int(result.leaf.serial.replace(":", ""), 16) == good.cert.serial_number
    assert result.leaf.authority_key_id == subject_key_id(pki["int"].cert)
    assert result.leaf.issuer_common_name == "Mesh Intermediate"
    assert result.remaining_seconds is not None
    assert 70 * 3600 < result.remaining_seconds <= 71 * 3600


async def test_wrong_hostname_is_a_bad_certificate(tmp_path: Path, pki: dict[str, Ca]) -> None:
    async with serving(server_context(tmp_path, pki["good"], [pki["int"]])) as port:
        result = await TlsProber(timeout=2).probe(
            _target(port, "db.service.consul"), pki["root"].pem
        )
    assert result.outcome is ProbeOutcome.BAD_CERTIFICATE
    assert result.problem is CertProblem.HOSTNAME_MISMATCH
    assert result.leaf is not None and result.leaf.dns_names == (SNI,)


async def test_expired_leaf_is_reported_with_its_dates(tmp_path: Path, pki: dict[str, Ca]) -> None:
    expired = pki["expired"]
    async with serving(server_context(tmp_path, expired, [pki["int"]])) as port:
        result = await TlsProber(timeout=2).probe(_target(port), pki["root"].pem)
    assert result.outcome is ProbeOutcome.BAD_CERTIFICATE
    assert result.problem is CertProblem.EXPIRED
    assert result.leaf is not None
    assert result.leaf.not_after == expired.cert.not_valid_after_utc
    assert result.remaining_seconds is not None and result.remaining_seconds < 0


async def test_unknown_ca_is_rejected(tmp_path: Path, pki: dict[str, Ca]) -> None:
    async with serving(server_context(tmp_path, pki["foreign"], [pki["other_root"]])) as port:
        result = await TlsProber(timeout=2).probe(_target(port), pki["root"].pem)
    assert result.outcome is ProbeOutcome.BAD_CERTIFICATE
    assert result.problem is CertProblem.UNKNOWN_CA
    assert result.leaf is not None and result.leaf.issuer_common_name == "Somebody Else"


async def test_a_sidecar_without_its_intermediate_fails_like_a_client_would(
    tmp_path: Path, pki: dict[str, Ca]
) -> None:
    async with serving(server_context(tmp_path, pki["good"], [])) as port:
        result = await TlsProber(timeout=2).probe(_target(port), pki["root"].pem)
    assert result.outcome is ProbeOutcome.BAD_CERTIFICATE
    assert result.problem is CertProblem.UNKNOWN_CA


async def test_connection_refused_is_unreachable_not_a_bad_certificate(pki: dict[str, Ca]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    result = await TlsProber(timeout=2).probe(_target(port), pki["root"].pem)
    assert result.outcome is ProbeOutcome.UNREACHABLE
    assert result.leaf is None and result.problem is None
    assert "refused" in result.detail.lower()


async def test_plaintext_port_is_a_failed_handshake(pki: dict[str, Ca]) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with serving(None, http) as port:
        result = await TlsProber(timeout=2).probe(_target(port), pki["root"].pem)
    assert result.outcome is ProbeOutcome.HANDSHAKE_FAILED
    assert result.leaf is None


async def test_concurrency_is_bounded_and_each_probe_times_out(pki: dict[str, Ca]) -> None:
    open_now = 0
    most = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        with contextlib.suppress(Exception):
            await reader.read()  # never answers the ClientHello; returns when the probe hangs up
        open_now -= 1
        writer.close()

    async with serving(None, silent) as port:
        prober = TlsProber(timeout=0.3, concurrency=2)
        results = await prober.probe_many([_target(port)] * 6, pki["root"].pem)
    assert [r.outcome for r in results] == [ProbeOutcome.HANDSHAKE_FAILED] * 6
    assert all("timed out" in r.detail for r in results)
    assert most == 2


async def test_openbao_issued_leaf_verifies_against_the_vault_root(
    tmp_path: Path, openbao: OpenBao
) -> None:
    client = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    await bootstrap_pki(client)
    issued = hvac.Client(url=openbao.addr, token=openbao.root_token).write_data(
        "pki_int/issue/mesh", data={"common_name": SNI, "ttl": "1h"}
    )["data"]
    key = serialization.load_pem_private_key(issued["private_key"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    leaf = Ca(x509.load_pem_x509_certificate(issued["certificate"].encode()), key)
    chain = [Ca(x509.load_pem_x509_certificate(p.encode()), key) for p in issued["ca_chain"]]

    trust = await VaultTrust(client).get()
    default = await read_issuer(client, "pki_int")
    async with serving(server_context(tmp_path, leaf, chain)) as port:
        result = await TlsProber(timeout=2).probe(_target(port), trust.anchors_pem)
    assert result.outcome is ProbeOutcome.OK, result.detail
    assert result.leaf is not None
    assert result.leaf.serial == issued["serial_number"]
    found = trust.issuer_of(result.leaf)
    assert found is not None and found.issuer_id == default.issuer_id and found.is_default
