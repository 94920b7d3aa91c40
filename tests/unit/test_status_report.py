"""The drift report names each kind of drift, and nothing for a converged job."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.status.report import LiveJob, build_report
from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase

NOW = datetime(2025, 1, 1, tzinfo=UTC)
READY = MeshStatus(phase=Phase.READY, observed_index=10, spec_hash="v1:abc")


def test_converged_job_has_no_drift_and_exit_code_zero() -> None:
    report = build_report(
        {("default", "web"): READY},
        now=NOW,
        live={("default", "web"): LiveJob(10, ("v1:abc",))},
        leader={"identity": "h/1"},
    )
    assert [r.ok for r in report.rows] == [True]
    assert report.exit_code == 0
    assert report.counts == {"Ready": 1}


def test_every_kind_of_drift_is_reported() -> None:
    degraded = MeshStatus(
        phase=Phase.DEGRADED,
        observed_index=10,
        spec_hash="v1:abc",
        cert_not_after="2025-01-01T06:00:00Z",
        conditions=(
            Condition(
                type=ConditionType.CONSUL_HEALTHY,
                status=ConditionStatus.FALSE,
                reason="Critical",
            ),
        ),
    )
    report = build_report(
        {("default", "web"): degraded, ("default", "gone"): READY},
        now=NOW,
        live={
            ("default", "web"): LiveJob(12, ("v1:zzz",)),
            ("default", "new"): LiveJob(3),
            ("default", "plain"): LiveJob(4, meshed=False),
        },
        leader={"identity": "h/1"},
    )
    rows = {r.job: r for r in report.rows}
    assert set(rows) == {"web", "gone", "new"}
    web = " | ".join(rows["web"].drift)
    for fragment in (
        "phase Degraded",
        "ConsulHealthy is False (Critical)",
        "index 12",
        "marker",
        "certificate expires",
    ):
        assert fragment in web
    assert rows["gone"].drift == ("job is gone but its status record remains",)
    assert rows["new"].drift == ("no status record",)
    assert report.exit_code == 1
    assert report.to_json()["jobs"][0]["job"] == "gone"


def test_no_leader_is_exit_code_two() -> None:
    assert build_report({}, now=NOW, leader=None).exit_code == 2
