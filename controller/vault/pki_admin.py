"""The PkiAdmin port over the Vault adapter: issuers of the mesh's intermediate mount.

An intermediate rotation needs only five things from Vault: the default issuer, the list of
issuers, the root (to bound the new intermediate's lifetime and to verify sidecars against), a
new issuer signed by the root, the default switch, and the retirement of the old issuer. The
retirement keeps the issuer and its key: usage ``read-only,crl-signing,ocsp-signing`` stops
issuance but leaves it able to sign CRLs and answer OCSP for the leaves it issued, and the
health check still recognises those leaves while they live.
"""

from __future__ import annotations

from controller.vault import (
    IssuerInfo,
    VaultClient,
    create_intermediate,
    list_issuers,
    read_issuer,
    root_pem,
    set_default_issuer,
    set_issuer_usage,
)
from crds_equivalent.config import MeshConfig

RETIRED_USAGE = "read-only,crl-signing,ocsp-signing"
INTERMEDIATE_CN = "nomad-tls-mesh Intermediate CA"


class VaultPki:
    """PkiAdmin for the mounts named by MeshConfig (``root_mount``, ``pki_mount``)."""

    def __init__(self, client: VaultClient, config: MeshConfig) -> None:
        self.client = client
        self.root_mount = config.root_mount
        self.int_mount = config.pki_mount

    async def default_issuer(self) -> IssuerInfo:
        return await read_issuer(self.client, self.int_mount, "default")

    async def issuers(self) -> list[IssuerInfo]:
        return await list_issuers(self.client, self.int_mount)

    async def root(self) -> str:
        return await root_pem(self.client, self.root_mount)

    async def create_issuer(self, name: str, ttl_seconds: int) -> str:
        return await create_intermediate(
            self.client,
            root_mount=self.root_mount,
            int_mount=self.int_mount,
            common_name=INTERMEDIATE_CN,
            ttl=f"{max(3600, ttl_seconds)}s",
            issuer_name=name,
        )

    async def make_default(self, issuer_id: str) -> None:
        await set_default_issuer(self.client, self.int_mount, issuer_id)

    async def retire(self, issuer_id: str) -> None:
        await set_issuer_usage(self.client, self.int_mount, issuer_id, RETIRED_USAGE)
