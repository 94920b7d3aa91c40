"""What the controller trusts right now: the mesh root(s) and the issuers whose leaves count.

The health check verifies each sidecar's chain against the root mount's CA, and then asks which
issuer signed the leaf: the intermediate mount's default issuer, or a previous one that is
still kept for verification during a rotation (an issuer is retired by deleting it, so "still in
the mount and not expired" is "still trusted"). Issuers change only on bootstrap or rotation, so
the answer is cached for ``refresh`` seconds; while Vault is away a cached answer up to
``max_stale`` seconds old is used, because a certificate check should not go Unknown on every
Vault blip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from controller.runtime.clock import Clock, SystemClock
from controller.vault import IssuerInfo, VaultClient, VaultError, list_issuers, root_pem
from controller.x509 import LeafInfo, subject_key_id


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer of the intermediate mount that can have signed live leaves."""

    issuer_id: str
    name: str
    common_name: str
    subject: str
    key_id: str  # Subject Key Identifier, hex
    not_after: datetime
    is_default: bool

    @property
    def label(self) -> str:
        """How the status names it: the id, with the name when it has one."""
        return f"{self.issuer_id} ({self.name})" if self.name else self.issuer_id


@dataclass(frozen=True)
class MeshTrust:
    anchors_pem: str  # the root CA certificate(s) chains must end at
    root_not_after: datetime
    issuers: tuple[TrustedIssuer, ...]

    @property
    def default(self) -> TrustedIssuer | None:
        return next((i for i in self.issuers if i.is_default), None)

    @property
    def ca_not_after(self) -> datetime:
        """The soonest expiry on the current signing chain (default issuer, root)."""
        current = self.default
        if current is None:
            return self.root_not_after
        return min(current.not_after, self.root_not_after)

    def issuer_of(self, leaf: LeafInfo) -> TrustedIssuer | None:
        """The trusted issuer that signed ``leaf`` (by key id; by name when it has no AKI)."""
        if leaf.authority_key_id:
            return next((i for i in self.issuers if i.key_id == leaf.authority_key_id), None)
        return next((i for i in self.issuers if i.subject == leaf.issuer), None)


def mesh_trust(root: str, issuers: Sequence[IssuerInfo], now: datetime) -> MeshTrust:
    """PURE: the trust view from the root mount's CA PEM and the intermediate mount's issuers."""
    anchors = [root.strip()]
    root_cert = x509.load_pem_x509_certificate(root.encode())
    trusted: list[TrustedIssuer] = []
    for info in issuers:
        cert = x509.load_pem_x509_certificate(info.certificate.encode())
        if cert.subject == cert.issuer and info.certificate.strip() not in anchors:
            anchors.append(info.certificate.strip())  # an older root kept for verification
        if not info.key_id or info.not_after <= now:
            continue
        trusted.append(
            TrustedIssuer(
                issuer_id=info.issuer_id,
                name=info.issuer_name,
                common_name=info.common_name,
                subject=cert.subject.rfc4514_string(),
                key_id=subject_key_id(cert),
                not_after=info.not_after,
                is_default=info.is_default,
            )
        )
    return MeshTrust(
        anchors_pem="\n".join(anchors) + "\n",
        root_not_after=root_cert.not_valid_after_utc,
        issuers=tuple(trusted),
    )


class TrustUnavailable(Exception):
    """Vault could not be read and no recent enough answer is cached."""


class VaultTrust:
    """A cached :class:`MeshTrust` read through the Vault adapter (controller policy suffices)."""

    def __init__(
        self,
        client: VaultClient,
        *,
        root_mount: str = "pki",
        int_mount: str = "pki_int",
        refresh: float = 60.0,
        max_stale: float = 900.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.root_mount = root_mount
        self.int_mount = int_mount
        self.refresh = refresh
        self.max_stale = max_stale
        self.clock: Clock = clock or SystemClock()
        self._cached: tuple[float, MeshTrust] | None = None

    async def get(self) -> MeshTrust:
        at = self.clock.monotonic()
        if self._cached is not None and at - self._cached[0] < self.refresh:
            return self._cached[1]
        try:
            root = await root_pem(self.client, self.root_mount)
            issuers = await list_issuers(self.client, self.int_mount)
            trust = mesh_trust(root, issuers, self.clock.now())
        except (VaultError, ValueError) as exc:
            if self._cached is not None and at - self._cached[0] < self.max_stale:
                return self._cached[1]
            raise TrustUnavailable(f"cannot read the mesh CA from Vault: {exc}") from exc
        self._cached = (at, trust)
        return trust
