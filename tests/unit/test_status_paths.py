"""Status record paths: one shared string per job, for plain and shortened paths alike."""

from __future__ import annotations

from controller.status.paths import is_hashed, key_of, path_for
from crds_equivalent.jobkey import JobKey


def test_every_call_for_a_job_returns_the_one_shared_path() -> None:
    first = path_for("bench", "svc-00001")
    again = path_for("".join(["ben", "ch"]), "".join(["svc-", "00001"]))  # not the same objects
    assert first == "mesh-controller/status/bench/svc-00001"
    assert again is first
    assert key_of(again) == JobKey("bench", "svc-00001")


def test_a_shortened_path_is_shared_too() -> None:
    long_id = "j" * 200
    path = path_for("default", long_id)
    assert is_hashed(path)
    assert len(path) <= 128
    assert path_for("default", "j" * 200) is path
    assert path_for("default", "j" * 199 + "k") != path
