"""PURE: what the controller needs to know about a served leaf certificate, read from its DER.

The probe sees only the public certificate a sidecar presents; this module turns it into the
facts the health check judges by (expiry, serial, issuer identity). The issuer is identified by
the leaf's Authority Key Identifier, which equals the Subject Key Identifier of the issuer that
signed it — robust across issuers that share a subject name, as rotated intermediates do.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class LeafInfo:
    """The public facts of one served leaf certificate. The health check keeps one per served
    instance between its passes, so the names every leaf of a service (or of an issuer) shares
    are interned: one copy each, not one per instance."""

    subject: str
    issuer: str
    serial: str  # Vault's spelling: lower-case hex byte pairs joined by colons
    not_before: datetime
    not_after: datetime
    authority_key_id: str  # hex; "" when the certificate has no AKI
    dns_names: tuple[str, ...]

    @property
    def lifetime_seconds(self) -> float:
        return (self.not_after - self.not_before).total_seconds()

    def remaining_seconds(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds()

    @property
    def issuer_common_name(self) -> str:
        return _cn_of(self.issuer)


def serial_hex(serial: int) -> str:
    """``0x1a2b`` -> ``1a:2b``, as Vault prints serial numbers."""
    raw = f"{serial:x}"
    raw = raw if len(raw) % 2 == 0 else "0" + raw
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def subject_key_id(cert: x509.Certificate) -> str:
    """The certificate's Subject Key Identifier as hex ("" when absent)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return ""
    return ext.value.digest.hex()


def authority_key_id(cert: x509.Certificate) -> str:
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return ""
    return (ext.value.key_identifier or b"").hex()


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(ext.value.get_values_for_type(x509.DNSName))


def _cn_of(rfc4514: str) -> str:
    for part in rfc4514.split(","):
        key, _, value = part.partition("=")
        if key.strip().upper() == "CN":
            return value.strip()
    return rfc4514


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def leaf_info(der: bytes) -> LeafInfo:
    """Parse a DER certificate (as ``SSLObject.getpeercert(binary_form=True)`` returns it)."""
    cert = x509.load_der_x509_certificate(der)
    return LeafInfo(
        subject=sys.intern(cert.subject.rfc4514_string()),
        issuer=sys.intern(cert.issuer.rfc4514_string()),
        serial=serial_hex(cert.serial_number),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        authority_key_id=sys.intern(authority_key_id(cert)),
        dns_names=tuple(sys.intern(n) for n in _dns_names(cert)),
    )
