"""A MeshTrust made from test CAs (tests.support.x509), and a TrustSource that always says it."""

from __future__ import annotations

from controller.tlsprobe import subject_key_id
from controller.vault.trust import MeshTrust, TrustedIssuer, mesh_trust
from tests.support.x509 import Ca


class FixedTrust:
    def __init__(self, trust: MeshTrust) -> None:
        self.trust = trust

    async def get(self) -> MeshTrust:
        return self.trust


def trust_for(root: Ca, inter: Ca) -> MeshTrust:
    """The root as the only anchor, the intermediate as the one (default) issuer."""
    base = mesh_trust(root.pem, [], inter.cert.not_valid_before_utc)
    issuer = TrustedIssuer(
        "int-1",
        "",
        "Mesh Intermediate",
        inter.cert.subject.rfc4514_string(),
        subject_key_id(inter.cert),
        inter.cert.not_valid_after_utc,
        True,
    )
    return MeshTrust(base.anchors_pem, base.root_not_after, (issuer,))
