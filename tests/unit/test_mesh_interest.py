"""The mesh predicate: which jobs and LIST stubs the event source must hand over.

Pure functions over Nomad's raw shapes; they live with the mesh feature, and the source is
given them (``MESH_INTEREST``), so these cases are tested here, without a source.
"""

from __future__ import annotations

from typing import Any

import pytest

from crds_equivalent.keys import INJECTED_GROUP_META, MESH_TLS, SIDECAR_TASK
from reconcilers.mesh.interest import (
    MESH_INTEREST,
    job_interesting,
    stub_flagged,
    stub_maybe_interesting,
)


def job(
    job_id: str,
    meta: dict[str, str] | None = None,
    group_meta: dict[str, str] | None = None,
    tasks: tuple[str, ...] = ("app",),
) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Namespace": "default",
        "Meta": meta,
        "JobModifyIndex": 7,
        "TaskGroups": [
            {"Name": "g", "Meta": group_meta, "Tasks": [{"Name": t} for t in tasks]},
        ],
    }


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (job("plain"), False),
        (job("off", meta={MESH_TLS: "false"}), False),
        (job("on", meta={MESH_TLS: "true"}), True),
        (job("go-bool", meta={MESH_TLS: "T"}), True),
        (job("invalid", meta={MESH_TLS: "yes"}), True),  # reconciled to record Invalid
        (job("group-on", group_meta={MESH_TLS: "1"}), True),
        (job("group-off", meta={MESH_TLS: "true"}, group_meta={MESH_TLS: "false"}), True),
        (job("marked", group_meta={INJECTED_GROUP_META: "v1:abc"}), True),
        (job("sidecar", tasks=("app", SIDECAR_TASK)), True),
        (job("other-meta", meta={"team": "x"}), False),
    ],
)
def test_job_interesting(doc: dict[str, Any], expected: bool) -> None:
    assert job_interesting(doc) is expected


def test_stub_predicates() -> None:
    assert stub_flagged({"ID": "a", "Meta": {MESH_TLS: "true"}})
    assert stub_flagged({"ID": "a", "Meta": {MESH_TLS: "nope"}})
    assert not stub_flagged({"ID": "a", "Meta": {MESH_TLS: "false"}})
    assert not stub_flagged({"ID": "a", "Meta": {"mesh.tls.ports": "http"}})
    assert stub_maybe_interesting({"ID": "a", "Meta": {"mesh.tls.ports": "http"}})
    assert stub_maybe_interesting({"ID": "a", "Meta": {MESH_TLS: "false"}})
    assert not stub_maybe_interesting({"ID": "a", "Meta": {"mesh.tlsx": "1"}})
    assert not stub_maybe_interesting({"ID": "a"})


def test_the_injected_object_answers_like_the_functions() -> None:
    """``MESH_INTEREST`` is what the composition root gives the source: it must not drift."""
    on, off = job("on", meta={MESH_TLS: "true"}), job("plain")
    assert MESH_INTEREST.job_interesting(on) and not MESH_INTEREST.job_interesting(off)
    assert MESH_INTEREST.stub_flagged({"ID": "a", "Meta": {MESH_TLS: "1"}})
    assert not MESH_INTEREST.stub_flagged({"ID": "a", "Meta": {"mesh.tls.ports": "x"}})
    assert MESH_INTEREST.stub_maybe_interesting({"ID": "a", "Meta": {"mesh.tls.ports": "x"}})
    assert not MESH_INTEREST.stub_maybe_interesting({"ID": "a"})
