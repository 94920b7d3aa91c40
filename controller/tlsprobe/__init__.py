"""The TLS prober: the controller's own verification of what each sidecar serves."""

from controller.tlsprobe.prober import (
    CertProblem,
    ProbeOutcome,
    ProbeResult,
    ProbeTarget,
    TlsProber,
)
from controller.x509 import LeafInfo, authority_key_id, leaf_info, subject_key_id

__all__ = [
    "CertProblem",
    "LeafInfo",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeTarget",
    "TlsProber",
    "authority_key_id",
    "leaf_info",
    "subject_key_id",
]
