"""Connect to a sidecar's TLS port and verify what it serves, the way a mesh client would.

Consul's own https checks skip verification (agents need not trust the mesh CA), so the
controller checks the certificates itself: the chain must verify against the mesh root (the
anchors are the root mount's CA certificates only, so a sidecar that omits its intermediate
fails here as it would for ``curl --cacert root.pem``), the name ``<service>.<domain>`` must
match, and the leaf's dates and issuer are reported. Failures are sorted into "could not
connect" (nothing listens, or the address is unreachable), "no TLS" (connected, but no TLS
session: a plaintext port, a reset) and "bad certificate" (a session, with a certificate a
client would reject) — they call for different fixes. When a certificate is rejected, a second,
unverified handshake reads it anyway so the report can say what was served (never trusted for
anything else). No private key is ever loaded here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from controller.runtime.clock import Clock, SystemClock
from controller.x509 import LeafInfo, leaf_info

# OpenSSL X509_V_ERR_* codes that SSLCertVerificationError.verify_code carries.
_NOT_YET_VALID = 9
_EXPIRED = 10
_UNKNOWN_CA = frozenset({2, 18, 19, 20, 21})
_HOSTNAME = frozenset({62, 64})


class ProbeOutcome(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"  # no TCP connection: refused, timed out, no route
    HANDSHAKE_FAILED = "handshake_failed"  # connected, but no TLS session came up
    BAD_CERTIFICATE = "bad_certificate"  # a TLS session, with a certificate that fails checks


class CertProblem(StrEnum):
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNKNOWN_CA = "unknown_ca"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    OTHER = "other"


@dataclass(frozen=True)
class ProbeTarget:
    """One instance to probe: where it listens and the name it must present (SNI + check)."""

    address: str
    port: int
    server_name: str

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port} ({self.server_name})"


@dataclass(frozen=True)
class ProbeResult:
    target: ProbeTarget
    outcome: ProbeOutcome
    detail: str = ""
    leaf: LeafInfo | None = None
    problem: CertProblem | None = None
    remaining_seconds: float | None = None  # leaf lifetime left at probe time

    @property
    def ok(self) -> bool:
        return self.outcome is ProbeOutcome.OK


def _problem(err: ssl.SSLCertVerificationError) -> CertProblem:
    code = int(getattr(err, "verify_code", 0) or 0)
    if code == _EXPIRED:
        return CertProblem.EXPIRED
    if code == _NOT_YET_VALID:
        return CertProblem.NOT_YET_VALID
    if code in _UNKNOWN_CA:
        return CertProblem.UNKNOWN_CA
    if code in _HOSTNAME:
        return CertProblem.HOSTNAME_MISMATCH
    return CertProblem.OTHER


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(getattr(exc, "verify_message", "") or exc)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


class TlsProber:
    """Probe many instances concurrently (at most ``concurrency`` at once), each bounded by
    ``timeout`` seconds for the TCP connect and again for the TLS handshake."""

    def __init__(
        self, *, timeout: float = 5.0, concurrency: int = 32, clock: Clock | None = None
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.timeout = timeout
        self.clock: Clock = clock or SystemClock()
        self._limit = asyncio.Semaphore(concurrency)
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._describe_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._describe_ctx.check_hostname = False
        self._describe_ctx.verify_mode = ssl.CERT_NONE

    def _context(self, anchors_pem: str) -> ssl.SSLContext:
        key = hashlib.sha256(anchors_pem.encode()).hexdigest()
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_verify_locations(cadata=anchors_pem)
            # The root mount's CA is the anchor even when it is itself signed by a corporate
            # CA (an external root): accept a chain that ends at it.
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            self._contexts[key] = ctx
            while len(self._contexts) > 4:
                self._contexts.popitem(last=False)
        return ctx

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]:
        """One result per target, in order. ``anchors_pem``: the mesh root CA certificate(s)."""
        ctx = self._context(anchors_pem)
        return list(await asyncio.gather(*(self._probe_limited(t, ctx) for t in targets)))

    async def probe(self, target: ProbeTarget, anchors_pem: str) -> ProbeResult:
        return await self._probe_limited(target, self._context(anchors_pem))

    async def _probe_limited(self, target: ProbeTarget, ctx: ssl.SSLContext) -> ProbeResult:
        async with self._limit:
            return await self._probe(target, ctx)

    async def _probe(self, target: ProbeTarget, ctx: ssl.SSLContext) -> ProbeResult:
        try:
            der = await self._handshake(target, ctx)
        except _Unreachable as exc:
            return ProbeResult(target, ProbeOutcome.UNREACHABLE, str(exc))
        except ssl.SSLCertVerificationError as exc:
            return await self._rejected(target, exc)
        except _NoTls as exc:
            return ProbeResult(target, ProbeOutcome.HANDSHAKE_FAILED, str(exc))
        leaf = leaf_info(der)
        return ProbeResult(
            target,
            ProbeOutcome.OK,
            "verified",
            leaf=leaf,
            remaining_seconds=leaf.remaining_seconds(self.clock.now()),
        )

    async def _rejected(
        self, target: ProbeTarget, exc: ssl.SSLCertVerificationError
    ) -> ProbeResult:
        leaf: LeafInfo | None = None
        with contextlib.suppress(_Unreachable, _NoTls, ValueError):
            leaf = leaf_info(await self._handshake(target, self._describe_ctx))
        return ProbeResult(
            target,
            ProbeOutcome.BAD_CERTIFICATE,
            _describe(exc),
            leaf=leaf,
            problem=_problem(exc),
            remaining_seconds=leaf.remaining_seconds(self.clock.now()) if leaf else None,
        )

    async def _handshake(self, target: ProbeTarget, ctx: ssl.SSLContext) -> bytes:
        """The DER leaf the server presents; raises _Unreachable, _NoTls or a verify error."""
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(target.address, target.port)
        except (OSError, TimeoutError) as exc:
            raise _Unreachable(_describe(exc) if str(exc) else "connect timed out") from None
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    await writer.start_tls(ctx, server_hostname=target.server_name)
            except ssl.SSLCertVerificationError:
                raise
            except TimeoutError:
                raise _NoTls("connected, but the TLS handshake timed out") from None
            except (OSError, ssl.SSLError, EOFError, ConnectionError) as exc:
                raise _NoTls(f"connected, but no TLS session: {_describe(exc)}") from None
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            if not der:
                raise _NoTls("TLS session without a server certificate")
            return bytes(der)
        finally:
            writer.transport.abort()


class _Unreachable(Exception):
    pass


class _NoTls(Exception):
    pass
