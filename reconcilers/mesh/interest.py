"""Which jobs the mesh controller must look at: pure predicates over raw stubs and jobs.

This is controller-runtime's *predicate* (filter events before a handler sees them), and it
lives with the mesh feature rather than in the Nomad adapter because "interesting" is mesh
policy: it reads our meta keys and our markers (``crds_equivalent.keys``). The Nomad event
source only knows the shape of a predicate (``controller.nomad.source.JobPredicate``); the
composition root hands it ``MESH_INTEREST``. An import-linter contract keeps
``controller.nomad`` from importing ``crds_equivalent.keys`` again.

"Interesting" is deliberately wider than "meshed": a job whose flag is unparsable must still be
reconciled (to record an Invalid status), and a job that still carries our markers must be
reconciled after its flag is removed (to give the user's group back). Only a job with no mesh
key at all and none of our markers is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crds_equivalent.goparse import parse_go_bool
from crds_equivalent.keys import INJECTED_GROUP_META, MESH_TLS, SIDECAR_TASK


def _flag_not_off(meta: Any) -> bool:
    """``mesh.tls`` present and not a Go false: true, or invalid (the reconciler says why)."""
    if not isinstance(meta, Mapping) or MESH_TLS not in meta:
        return False
    try:
        return parse_go_bool(str(meta[MESH_TLS]))
    except ValueError:
        return True


def has_mesh_key(meta: Any) -> bool:
    """Any ``mesh.tls`` or ``mesh.tls.*`` key in a meta map."""
    if not isinstance(meta, Mapping):
        return False
    return any(k == MESH_TLS or str(k).startswith(MESH_TLS + ".") for k in meta)


def stub_flagged(stub: Mapping[str, Any]) -> bool:
    """From a LIST stub (job meta only): the job-level flag is on (or invalid)."""
    return _flag_not_off(stub.get("Meta"))


def stub_maybe_interesting(stub: Mapping[str, Any]) -> bool:
    """From a LIST stub: any mesh key in the job meta — the wide net used when unflagged
    jobs are not read one by one (their groups, invisible here, might opt in)."""
    return has_mesh_key(stub.get("Meta"))


def job_interesting(job: Mapping[str, Any]) -> bool:
    """From a full job: opted in (job or group meta) or carrying our markers."""
    if _flag_not_off(job.get("Meta")):
        return True
    for group in job.get("TaskGroups") or ():
        meta = group.get("Meta") or {}
        if _flag_not_off(meta) or INJECTED_GROUP_META in meta:
            return True
        if any(task.get("Name") == SIDECAR_TASK for task in group.get("Tasks") or ()):
            return True
    return False


class MeshInterest:
    """The three predicates as one object, the shape ``NomadEventSource`` is given."""

    def stub_flagged(self, stub: Mapping[str, Any]) -> bool:
        return stub_flagged(stub)

    def stub_maybe_interesting(self, stub: Mapping[str, Any]) -> bool:
        return stub_maybe_interesting(stub)

    def job_interesting(self, job: Mapping[str, Any]) -> bool:
        return job_interesting(job)


MESH_INTEREST = MeshInterest()
