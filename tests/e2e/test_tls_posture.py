"""TLS posture of the sidecar, checked with `openssl s_client` against the real nginx that the
controller injected in front of a meshed raw_exec app on the full devstack.

What the sidecar must offer (RELIABILITY.md has the table): TLS 1.2 and 1.3 only; no RSA key
exchange; AEAD ciphers only; no compression; no client-initiated renegotiation; session tickets
and OCSP stapling as the settings say (both off: the rendered nginx.conf sets
`ssl_session_tickets off` and configures no stapling); the complete chain (leaf + intermediate)
that verifies against the mesh root.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from chaos.world import DevWorld, devstack_world, meshed_web, tls_instance
from crds_equivalent.status import Phase

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


class Endpoint:
    def __init__(self, address: str, port: int, name: str, root_file: str) -> None:
        self.address, self.port, self.name, self.root = address, port, name, root_file

    async def s_client(self, *args: str, stdin: bytes = b"Q\n") -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "openssl",
            "s_client",
            "-connect",
            f"{self.address}:{self.port}",
            "-servername",
            self.name,
            "-CAfile",
            self.root,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin), 20)
        return proc.returncode or 0, out.decode(errors="replace")


def handshake_ok(output: str) -> bool:
    cipher = re.search(r"Cipher is (\S+)", output)
    return bool(cipher) and cipher is not None and cipher.group(1) != "(NONE)"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def endpoint() -> AsyncIterator[Endpoint]:
    async with devstack_world() as w:
        await w.app.jobs.register_job(meshed_web("posture"), enforce_index=None)
        await _ready(w)
        address, port = await tls_instance(w, "posture")
        root = await _root_pem(w)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "root.pem"
            path.write_text(root)
            yield Endpoint(address, port, f"posture.{w.app.settings.mesh.domain}", str(path))


async def _ready(w: DevWorld) -> None:
    for _ in range(300):
        status = await w.app.statuses.get("default", "posture")
        if status is not None and status.phase == Phase.READY:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("posture never became Ready")


async def _root_pem(w: DevWorld) -> str:
    from controller.vault import root_pem

    return await root_pem(w.vault, w.app.settings.mesh.root_mount)


@pytest.mark.parametrize(("flag", "offered"), [("-tls1_2", True), ("-tls1_3", True)])
async def test_tls_1_2_and_1_3_are_offered(endpoint: Endpoint, flag: str, offered: bool) -> None:
    _, out = await endpoint.s_client(flag)
    assert handshake_ok(out) is offered, out


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
async def test_older_protocols_are_refused(endpoint: Endpoint, flag: str) -> None:
    # The local OpenSSL may refuse to even try them (security level); either way: no session.
    _, out = await endpoint.s_client(flag, "-cipher", "DEFAULT:@SECLEVEL=0")
    assert not handshake_ok(out), out


@pytest.mark.parametrize(
    "cipher",
    [
        "AES128-GCM-SHA256",  # RSA key exchange (AEAD, but no forward secrecy)
        "AES256-SHA256",  # RSA key exchange, CBC
        "ECDHE-ECDSA-AES128-SHA256",  # forward secret, but CBC (not AEAD)
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES128-SHA",
    ],
)
async def test_no_rsa_key_exchange_and_no_cbc(endpoint: Endpoint, cipher: str) -> None:
    _, out = await endpoint.s_client("-tls1_2", "-cipher", cipher)
    assert not handshake_ok(out), out


async def test_what_is_negotiated_is_aead_without_compression_tickets_or_stapling(
    endpoint: Endpoint,
) -> None:
    for flag in ("-tls1_2", "-tls1_3"):
        _, out = await endpoint.s_client(flag, "-status", "-showcerts")
        cipher = re.search(r"Cipher is (\S+)", out)
        assert cipher is not None, out
        assert any(a in cipher.group(1) for a in ("GCM", "CHACHA20", "CCM")), out
        if flag == "-tls1_2":
            assert "ECDHE" in cipher.group(1), out  # forward-secret key exchange
        assert "Compression: NONE" in out, out
        if flag == "-tls1_2":  # ssl_session_tickets off: no ticket extension, session ids only
            assert "TLS session ticket" not in out, out
        # (TLS 1.3 always resumes through NewSessionTicket; with tickets off nginx/OpenSSL send
        # stateful ones that only name an entry of the server's session cache.)
        assert "OCSP response: no response sent" in out, out  # no stapling configured
        # The complete chain: leaf and intermediate, verified against the root only.
        assert len(re.findall(r"-----BEGIN CERTIFICATE-----", out)) == 2, out
        assert "Verify return code: 0 (ok)" in out, out


async def test_client_initiated_renegotiation_is_refused(endpoint: Endpoint) -> None:
    _, out = await endpoint.s_client("-tls1_2", stdin=b"R\n")
    assert "RENEGOTIATING" in out, out
    assert re.search(r"(no renegotiation|alert|errno|error)", out, re.IGNORECASE), out
