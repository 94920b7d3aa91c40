"""Use an organisation's existing CA as the mesh root instead of generating one in Vault.

The original deployment signed leaves with the company's CA; an operator who wants clients to
keep trusting that CA hands ``controllerctl bootstrap-pki --external-root FILE`` a PEM bundle of
the CA certificate (optionally followed by its own issuers) and its private key. The bundle is
imported into the root mount, whose keyed issuer becomes the default: Vault then signs the mesh
intermediate with it, and the key never leaves Vault again. (A root whose key must stay offline
needs a CSR round trip instead: out of scope here, see the README.)

Idempotent: when the root mount's default issuer already is that certificate, nothing happens;
when it is a different CA, nothing is replaced and the caller is told why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

from controller.vault.client import VaultClient, VaultError

_KEY_BLOCK = re.compile(r"-----BEGIN (?:EC |RSA |ENCRYPTED )?PRIVATE KEY-----")


class ExternalRootError(VaultError):
    """The bundle cannot be used, or the mount already holds a different root."""


@dataclass(frozen=True)
class RootBundle:
    """The certificates of a PEM bundle (the key is left in ``text`` and only sent to Vault)."""

    text: str
    certificates: tuple[x509.Certificate, ...]

    @property
    def subject(self) -> str:
        return self.certificates[0].subject.rfc4514_string()


def parse_root_bundle(text: str, source: str = "external root") -> RootBundle:
    """Check the bundle's shape: at least one CA certificate and an unencrypted private key."""
    try:
        certs = tuple(x509.load_pem_x509_certificates(text.encode()))
    except ValueError:
        raise ExternalRootError(f"{source}: no PEM certificate found") from None
    if "ENCRYPTED PRIVATE KEY" in text:
        raise ExternalRootError(f"{source}: the private key is encrypted; Vault needs it in clear")
    if not _KEY_BLOCK.search(text):
        raise ExternalRootError(
            f"{source}: no private key in the bundle; Vault must hold the root's key to sign "
            "the mesh intermediate"
        )
    first = certs[0]
    try:
        is_ca = first.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ExternalRootError(f"{source}: {first.subject.rfc4514_string()} is not a CA")
    return RootBundle(text, certs)


async def _default_certificate(client: VaultClient, mount: str) -> x509.Certificate | None:
    config = await client.read(f"{mount}/config/issuers")
    default = str(((config or {}).get("data") or {}).get("default") or "")
    if not default:
        return None
    issuer = await client.read(f"{mount}/issuer/{default}")
    pem = str(((issuer or {}).get("data") or {}).get("certificate") or "")
    return x509.load_pem_x509_certificate(pem.encode()) if pem else None


async def import_external_root(client: VaultClient, mount: str, bundle: RootBundle) -> bool:
    """Make the bundle's keyed CA the default issuer of ``mount``; False when it already is."""
    current = await _default_certificate(client, mount)
    if current is not None:
        if current in bundle.certificates:
            return False
        raise ExternalRootError(
            f"{mount}/ already has a different root CA ({current.subject.rfc4514_string()}); "
            "refusing to replace it — use another mount or remove that issuer first"
        )
    resp = await client.write(f"{mount}/issuers/import/bundle", {"pem_bundle": bundle.text})
    mapping: dict[str, str] = ((resp or {}).get("data") or {}).get("mapping") or {}
    keyed = [issuer for issuer, key in mapping.items() if key]
    if len(keyed) != 1:
        raise ExternalRootError(
            f"import into {mount}/: expected exactly one certificate matching the key, "
            f"got {len(keyed)}"
        )
    await client.write(f"{mount}/config/issuers", {"default": keyed[0]})
    return True
