"""The rotation gauge: whether an intermediate CA rotation is running.

``mesh_rotation_in_progress`` is 1 while the ``mesh-controller/rotation`` Variable holds an
unfinished rotation (also one driven by ``controllerctl rotate-ca``), so an alert can fire on a
rotation that stays in progress, or that stopped failed (then the gauge is 0 and the Variable's
phase is ``failed``).
"""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Gauge

ROTATION_IN_PROGRESS = "mesh_rotation_in_progress"

_families: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()


class RotationMetrics:
    """One gauge per registry, so two controllers in one process do not collide."""

    def __init__(self, registry: CollectorRegistry) -> None:
        found = _families.get(registry)
        if found is None:
            found = Gauge(
                ROTATION_IN_PROGRESS,
                "1 while an intermediate CA rotation is in progress, else 0.",
                registry=registry,
            )
            _families[registry] = found
        self.rotation = found

    def rotating(self, active: bool) -> None:
        self.rotation.set(1 if active else 0)
