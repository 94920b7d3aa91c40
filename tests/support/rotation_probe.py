"""A TLS probe that stands in for the sidecar's template in rotation tests on the twins.

The twin's simulated driver runs no sidecar, so the first time an instance (address, port) is
probed it is issued a leaf by OpenBao from whatever the mount's default issuer is at that moment
— exactly what a new allocation's ``pkiCert`` does — and keeps it. Shared by the rotation tests
(test modules never import each other).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from controller.tlsprobe import ProbeOutcome, ProbeResult, ProbeTarget, leaf_info
from controller.vault import VaultClient
from crds_equivalent.config import MeshConfig


class IssuingProbe:
    """Each new instance is issued a leaf by OpenBao's current default issuer, and keeps it."""

    def __init__(self, vault: VaultClient, config: MeshConfig) -> None:
        self.vault = vault
        self.config = config
        self.served: dict[tuple[str, int], bytes] = {}

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]:
        out = []
        for t in targets:
            der = self.served.get((t.address, t.port))
            if der is None:
                issued = await self.vault.write(
                    f"{self.config.pki_mount}/issue/{self.config.pki_role}",
                    {"common_name": t.server_name, "ttl": "1h"},
                )
                assert issued is not None
                pem = issued["data"]["certificate"].encode()
                der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
                self.served[(t.address, t.port)] = der
            out.append(ProbeResult(t, ProbeOutcome.OK, "verified", leaf=leaf_info(der)))
        return out

    async def started(self, targets: Sequence[ProbeTarget]) -> None:
        """Instances that already run get their leaf now, from today's issuer, as their
        sidecar's template did at start; probed later (after a rotation made a new issuer the
        default) they would otherwise look re-issued without having rolled."""
        await self.probe_many(targets, "")
