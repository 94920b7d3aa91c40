"""Reads and rotation primitives over Vault PKI issuers (multi-issuer mounts, Vault >= 1.11).

The controller needs the CA chain (to verify sidecars), the default issuer and its NotAfter (to
plan rotation), and the few writes an intermediate rotation is made of: a new issuer signed by
the root, a default switch, a usage change and a delete. Bootstrap reuses the same primitives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from controller.vault.client import VaultBadRequest, VaultClient, VaultError, VaultNotFound


@dataclass(frozen=True)
class IssuerInfo:
    """One issuer of a PKI mount, with the dates the controller plans by."""

    issuer_id: str
    issuer_name: str
    key_id: str
    is_default: bool
    usage: str
    common_name: str
    not_before: datetime
    not_after: datetime
    certificate: str = field(repr=False)
    ca_chain: tuple[str, ...] = field(repr=False)


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _data(resp: dict[str, Any] | None, what: str) -> dict[str, Any]:
    if resp is None:
        raise VaultNotFound(f"{what}: not found")
    data = resp.get("data")
    if not isinstance(data, dict):
        raise VaultError(f"{what}: response has no data")
    return data


async def read_issuer(client: VaultClient, mount: str, ref: str = "default") -> IssuerInfo:
    """GET <mount>/issuer/<ref> (`ref` is an id, a name, or `default`)."""
    what = f"read {mount}/issuer/{ref}"
    try:
        data = _data(await client.read(f"{mount}/issuer/{ref}"), what)
    except (VaultBadRequest, VaultError) as e:
        if isinstance(e, VaultNotFound) or "default issuer" in str(e) or "unable to find" in str(e):
            raise VaultNotFound(f"{what}: no such issuer") from e
        raise
    default = await default_issuer_id(client, mount)
    pem = str(data["certificate"])
    cert = x509.load_pem_x509_certificate(pem.encode())
    return IssuerInfo(
        issuer_id=str(data["issuer_id"]),
        issuer_name=str(data.get("issuer_name") or ""),
        key_id=str(data.get("key_id") or ""),
        is_default=str(data["issuer_id"]) == default,
        usage=str(data.get("usage") or ""),
        common_name=_cn(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        certificate=pem,
        ca_chain=tuple(str(c) for c in data.get("ca_chain") or ()),
    )


async def default_issuer_id(client: VaultClient, mount: str) -> str:
    """The mount's default issuer id, or "" when none is configured."""
    resp = await client.read(f"{mount}/config/issuers")
    if not resp:
        return ""
    return str((resp.get("data") or {}).get("default") or "")


async def list_issuers(client: VaultClient, mount: str) -> list[IssuerInfo]:
    """Every issuer of the mount, oldest NotBefore first."""
    ids = await client.list(f"{mount}/issuers")
    infos = [await read_issuer(client, mount, i) for i in ids]
    return sorted(infos, key=lambda i: (i.not_before, i.issuer_id))


async def ca_chain_pem(client: VaultClient, mount: str) -> str:
    """The default issuer's chain as PEM (issuer first, root last when the mount knows it)."""
    data = _data(await client.read(f"{mount}/cert/ca_chain"), f"read {mount}/cert/ca_chain")
    chain = str(data.get("ca_chain") or data.get("certificate") or "")
    return chain.strip() + "\n" if chain.strip() else ""


async def root_pem(client: VaultClient, root_mount: str) -> str:
    """The root mount's default CA certificate (the trust anchor clients should pin)."""
    data = _data(await client.read(f"{root_mount}/cert/ca"), f"read {root_mount}/cert/ca")
    return str(data.get("certificate") or "").strip() + "\n"


async def create_intermediate(
    client: VaultClient,
    *,
    root_mount: str,
    int_mount: str,
    common_name: str,
    ttl: str,
    key_type: str = "ec",
    key_bits: int = 256,
    issuer_name: str | None = None,
) -> str:
    """Generate a key + CSR in `int_mount`, sign it with the root, import it; return its id.

    The new issuer is NOT made default here (a default switch is a separate, deliberate step).
    The root is imported along with it (key-less) so chains served by the mount end at the root.
    """
    csr = _data(
        await client.write(
            f"{int_mount}/intermediate/generate/internal",
            {"common_name": common_name, "key_type": key_type, "key_bits": key_bits},
        ),
        "generate intermediate CSR",
    )["csr"]
    signed = _data(
        await client.write(
            f"{root_mount}/root/sign-intermediate",
            {"csr": csr, "common_name": common_name, "ttl": ttl, "format": "pem"},
        ),
        "sign intermediate",
    )
    bundle = str(signed["certificate"]).strip() + "\n" + str(signed["issuing_ca"]).strip() + "\n"
    imported = _data(
        await client.write(f"{int_mount}/intermediate/set-signed", {"certificate": bundle}),
        "import intermediate",
    )
    mapping: dict[str, str] = imported.get("mapping") or {}
    with_key = [iid for iid, kid in mapping.items() if kid]
    if len(with_key) != 1:
        raise VaultError(f"import intermediate: expected one keyed issuer, got {mapping}")
    issuer_id = with_key[0]
    if issuer_name:
        await client.patch(f"{int_mount}/issuer/{issuer_id}", {"issuer_name": issuer_name})
    return issuer_id


async def set_default_issuer(client: VaultClient, mount: str, issuer_ref: str) -> None:
    """Make `issuer_ref` the mount's default: roles with issuer_ref=default issue from it."""
    await client.write(f"{mount}/config/issuers", {"default": issuer_ref})


async def set_issuer_usage(client: VaultClient, mount: str, issuer_ref: str, usage: str) -> None:
    """E.g. `read-only,crl-signing,ocsp-signing` to stop issuance but keep revocation working."""
    await client.patch(f"{mount}/issuer/{issuer_ref}", {"usage": usage})


async def delete_issuer(client: VaultClient, mount: str, issuer_ref: str) -> None:
    await client.delete(f"{mount}/issuer/{issuer_ref}")
