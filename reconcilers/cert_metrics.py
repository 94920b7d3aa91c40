"""The certificate-lifecycle metrics: remediations taken and whether a CA rotation is running.

``mesh_remediations_total{kind="restart"|"reissue"}`` counts sidecar restarts (one per
allocation) and forced re-issues (one per job version written); a steady rise means renewals
are being missed somewhere (alert on ``increase(...[1h]) > 0`` for ``reissue``).
``mesh_rotation_in_progress`` is 1 while the ``mesh-controller/rotation`` Variable holds an
unfinished rotation (also one driven by ``controllerctl rotate-ca``), so an alert can fire on a
rotation that stays in progress, or that stopped failed (then the gauge is 0 and the Variable's
phase is ``failed``).
"""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter, Gauge

REMEDIATIONS = "mesh_remediations"
ROTATION_IN_PROGRESS = "mesh_rotation_in_progress"

_families: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Gauge]] = (
    weakref.WeakKeyDictionary()
)


class CertMetrics:
    """One set of families per registry, so two controllers in one process do not collide."""

    def __init__(self, registry: CollectorRegistry) -> None:
        found = _families.get(registry)
        if found is None:
            remediations = Counter(
                REMEDIATIONS,
                "Certificate remediations taken: kind=restart (a sidecar restarted) or "
                "kind=reissue (a new job version with a rotation nonce).",
                ["kind"],
                registry=registry,
            )
            for kind in ("restart", "reissue"):
                remediations.labels(kind)
            rotation = Gauge(
                ROTATION_IN_PROGRESS,
                "1 while an intermediate CA rotation is in progress, else 0.",
                registry=registry,
            )
            found = (remediations, rotation)
            _families[registry] = found
        self.remediations, self.rotation = found

    def remediated(self, kind: str, count: int = 1) -> None:
        self.remediations.labels(kind).inc(count)

    def rotating(self, active: bool) -> None:
        self.rotation.set(1 if active else 0)
