"""The remediation counter: how often the certificate reconciler had to step in.

``mesh_remediations_total{kind="restart"|"reissue"}`` counts sidecar restarts (one per
allocation) and forced re-issues (one per job version written); a steady rise means renewals
are being missed somewhere (alert on ``increase(...[1h]) > 0`` for ``reissue``).
"""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter

REMEDIATIONS = "mesh_remediations"

_families: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


class CertMetrics:
    """One set of families per registry, so two controllers in one process do not collide."""

    def __init__(self, registry: CollectorRegistry) -> None:
        found = _families.get(registry)
        if found is None:
            found = Counter(
                REMEDIATIONS,
                "Certificate remediations taken: kind=restart (a sidecar restarted) or "
                "kind=reissue (a new job version with a rotation nonce).",
                ["kind"],
                registry=registry,
            )
            for kind in ("restart", "reissue"):
                found.labels(kind)
            _families[registry] = found
        self.remediations = found

    def remediated(self, kind: str, count: int = 1) -> None:
        self.remediations.labels(kind).inc(count)
