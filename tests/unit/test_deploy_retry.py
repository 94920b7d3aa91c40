"""PURE policy of failed/reverted deployments and canaries: backoff, detection, who promotes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.spec import SpecError, parse_job_specs
from devstack.testing import user_job
from reconcilers.injection.canary import controller_promotes, manual_promotion
from reconcilers.mesh.retry import Backoff, Retry, after_failure
from reconcilers.mesh.rollout import awaits_promotion, canaries_healthy, reverted_by_nomad
from reconcilers.rotation.state import RotationState, Stage

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "delay"), [(1, 300), (2, 600), (3, 1200), (4, 1800), (9, 1800)]
)
def test_default_backoff_is_at_most_three_writes_an_hour(failures: int, delay: float) -> None:
    assert Backoff().delay(failures) == delay


def test_a_failure_is_counted_once_and_the_next_one_waits_longer() -> None:
    b = Backoff(10, 100)
    first = after_failure(
        None, deployment="d1", reason="Reverted", description="x", now=NOW, backoff=b
    )
    again = after_failure(
        first,
        deployment="d1",
        reason="Reverted",
        description="x",
        now=NOW + timedelta(seconds=5),
        backoff=b,
    )
    second = after_failure(
        first, deployment="d2", reason="Reverted", description="x", now=NOW, backoff=b
    )
    assert again == first and first.attempts == 1
    assert first.next_attempt == NOW + timedelta(seconds=10)
    assert second.attempts == 2 and second.next_attempt == NOW + timedelta(seconds=20)
    assert Retry.from_json(second.to_json()) == second
    assert Retry.from_json("{broken") is None


def _dep(**fields: Any) -> dict[str, Any]:
    return {"ID": "d1", "JobVersion": 1, "JobSpecModifyIndex": 40, "Status": "failed"} | fields


@pytest.mark.parametrize(
    ("version", "description", "written", "expected"),
    [
        (2, "Failed due to unhealthy allocations - rolling back to job version 0", 40, True),
        (3, "Failed due to unhealthy allocations - rolling back to job version 0", 40, False),
        (2, "Failed due to unhealthy allocations", 40, False),
        (2, "Failed due to unhealthy allocations - rolling back to job version 0", 41, False),
    ],
)
def test_a_revert_is_nomads_only_right_after_our_failed_version(
    version: int, description: str, written: int, expected: bool
) -> None:
    found = reverted_by_nomad({"Version": version}, [_dep(StatusDescription=description)], written)
    assert (found is not None) == expected


def test_canary_deployments_wait_unless_nomad_promotes_them() -> None:
    group = {"DesiredCanaries": 1, "PlacedCanaries": ["a"], "HealthyAllocs": 1, "Promoted": False}
    assert awaits_promotion({"TaskGroups": {"app": group}})
    assert canaries_healthy({"TaskGroups": {"app": group}})
    assert not awaits_promotion({"TaskGroups": {"app": group | {"AutoPromote": True}}})
    assert not awaits_promotion({"TaskGroups": {"app": group | {"Promoted": True}}})
    assert not canaries_healthy({"TaskGroups": {"app": group | {"HealthyAllocs": 0}}})


def _canary_job(meta: dict[str, str], **update: Any) -> dict[str, Any]:
    job = user_job("web", {"mesh.tls": "true", **meta})
    job["TaskGroups"][0]["Update"] = {"Canary": 1} | update
    return job


def test_who_promotes() -> None:
    config = MeshConfig()
    assert "manual promotion" in manual_promotion(_canary_job({}), config)
    assert not controller_promotes(_canary_job({}), config)
    auto = _canary_job({"mesh.tls.promote": "auto"})
    assert manual_promotion(auto, config) == "" and controller_promotes(auto, config)
    nomad_promotes = _canary_job({}, AutoPromote=True)
    assert manual_promotion(nomad_promotes, config) == ""
    assert manual_promotion(user_job("web", {"mesh.tls": "true"}), config) == ""


def test_promote_value_is_validated() -> None:
    with pytest.raises(
        SpecError, match=re.escape('"mesh.tls.promote" = "yes": expected one of manual, auto')
    ):
        parse_job_specs(user_job("web", {"mesh.tls": "true", "mesh.tls.promote": "yes"}))


def test_skipped_jobs_survive_the_record() -> None:
    state = RotationState(
        id="r",
        stage=Stage.ROLLING,
        trigger="cli",
        owner="me",
        old_issuer="o",
        started_at=NOW,
        heartbeat=NOW,
    )
    skipped = state.skip(JobKey("default", "web"), "skipped: canaries", NOW)
    back = RotationState.from_items(skipped.to_items())
    assert back.is_skipped(JobKey("default", "web")) and JobKey("default", "web") in back.done
    assert "skipped" not in state.to_items()
