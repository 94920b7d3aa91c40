"""PEM scanning and pkiCert's renewal clock, as consul-template's vault_pki does it.

pkiCert treats its destination file as a cache: it scans the file for PEM blocks (private key,
CA certificates, the leaf) and reuses them until NotBefore + 0.90 x lifetime, with no jitter
(consul-template's jitter term is an integer division that is always zero).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from devstack.template.gofmt import GoStruct

RENEWAL_THRESHOLD = 0.90

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


@dataclass
class PemEncoded(GoStruct):
    """pkiCert's result; `.Data` returns itself so `.Data.Cert` works too."""

    Cert: str = ""
    Key: str = field(default="", repr=False)
    CA: str = ""
    CAChain: list[str] = field(default_factory=list)
    go_type = "dependency.PemEncoded"

    @property
    def Data(self) -> PemEncoded:
        return self


def encode_block(kind: str, der: bytes) -> str:
    """pem.EncodeToMemory: 64-column base64 lines and a trailing newline."""
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


def scan(raw: bytes) -> tuple[PemEncoded, x509.Certificate | None]:
    """Every PEM block in `raw`: the key, CA certs (first is .CA, all are .CAChain), the leaf."""
    out = PemEncoded()
    leaf: x509.Certificate | None = None
    for m in _BLOCK.finditer(raw):
        kind = m.group(1).decode()
        der = base64.b64decode(b"".join(m.group(2).split()))
        block = encode_block(kind, der)
        if kind.endswith("PRIVATE KEY"):
            out.Key = block
            continue
        if kind != "CERTIFICATE":
            continue
        cert = x509.load_der_x509_certificate(der)
        if _is_ca(cert):
            if not out.CA:
                out.CA = block
            out.CAChain.append(block)
        else:
            leaf = cert
            out.Cert = block
    return out, leaf


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def rotation_time(cert: x509.Certificate | None, now: float) -> float | None:
    """When this leaf must be replaced; None when it is absent, expired, or past that point."""
    if cert is None:
        return None
    start = cert.not_valid_before_utc.timestamp()
    end = cert.not_valid_after_utc.timestamp()
    if end <= now:
        return None
    at = start + RENEWAL_THRESHOLD * (end - start)
    return at if at > now else None


def blob_from_issue(data: dict[str, Any]) -> bytes:
    """The PEM text of a pki/issue response: leaf, key, then the chain (or issuing CA)."""
    parts = [str(data.get("certificate") or ""), str(data.get("private_key") or "")]
    chain = data.get("ca_chain") or ([data["issuing_ca"]] if data.get("issuing_ca") else [])
    parts.extend(str(c) for c in chain)
    return "\n".join(p.strip() for p in parts if p).encode() + b"\n"
