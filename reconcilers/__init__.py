"""The business logic: what a meshed job must look like, and how to get there.

One package per reconciler, its pure policy beside it (cert-manager's cut):

* ``injection`` — the PURE compiler: job views, inject/uninject, the sidecar's nginx and
  certificate templates, the plan (NoOp | Apply | Remove | Invalid) and forced re-issue.
* ``instances`` — shared by health, certs and rotation: which running instance serves which leaf.
* ``mesh``, ``health``, ``certs``, ``rotation`` — the four reconcilers; independent of each other
  (an import-linter contract says so). They talk to the world only through ``reconcilers.ports``.

The entry points are re-exported here, so the composition root, the CLI, bench and chaos import
from ``reconcilers`` only.
"""

from reconcilers.certs.reconciler import CertReconciler
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.injection.inject import inject, uninject
from reconcilers.injection.plan import plan_job
from reconcilers.mesh.reconciler import MeshReconciler
from reconcilers.rotation.loop import rotation_loop
from reconcilers.rotation.rotator import Rotator

__all__ = [
    "CertReconciler",
    "HealthReconciler",
    "MeshReconciler",
    "Rotator",
    "inject",
    "plan_job",
    "rotation_loop",
    "uninject",
]
