"""The per-job drift verdict names each kind of drift, and nothing for a converged job."""

from __future__ import annotations

from datetime import UTC, datetime

from controller.ctl.drift import LiveJob, build_report
from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase

NOW = datetime(2025, 1, 1, tzinfo=UTC)
READY = MeshStatus(phase=Phase.READY, observed_index=10, spec_hash="v1:abc")


def test_converged_job_has_no_drift() -> None:
    rows = build_report(
        {("default", "web"): READY},
        now=NOW,
        live={("default", "web"): LiveJob(10, ("v1:abc",))},
    )
    assert [(r.job, r.phase, r.ok, r.drift) for r in rows] == [("web", "Ready", True, ())]


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
    )
    assert [r.job for r in report] == ["gone", "new", "web"]  # sorted, the unmeshed job left out
    rows = {r.job: r for r in report}
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
    assert not any(r.ok for r in report)


def test_without_live_facts_only_the_record_is_judged() -> None:
    rows = build_report({("default", "web"): READY}, now=NOW, live=None)
    assert [(r.job, r.ok) for r in rows] == [("web", True)]
