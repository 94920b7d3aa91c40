"""The pure planning of a CA rotation: waves, the stored record, resuming, stopping on failure,
and the per-job verdict a wave waits for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.consul.wire import HealthEntry
from controller.tlsprobe import LeafInfo, ProbeOutcome, ProbeResult, ProbeTarget
from crds_equivalent.spec import Mode
from reconcilers.instances.matching import ConsulFindings, FrontedPort, Instance
from reconcilers.instances.observe import Observation
from reconcilers.rotation.state import (
    CorruptState,
    RotationState,
    Stage,
    new_rotation,
    plan_waves,
)
from reconcilers.rotation.verdict import judge_job, old_leaves

NOW = datetime(2030, 1, 1, tzinfo=UTC)
JOBS = [("default", f"job{i}") for i in range(5)]


def fresh(wave_size: int = 2) -> RotationState:
    return new_rotation("r1", "old-id", trigger="cli", owner="me", wave_size=wave_size, now=NOW)


@given(st.lists(st.tuples(st.sampled_from("ab"), st.text("xyz", min_size=1)), max_size=30),
       st.integers(1, 7))  # fmt: skip
def test_waves_cover_every_job_once_in_a_stable_order(jobs: list[Any], size: int) -> None:
    waves = plan_waves(jobs, size)
    flat = [k for w in waves for k in w]
    assert flat == sorted(set(jobs))
    assert all(1 <= len(w) <= size for w in waves)
    assert plan_waves(list(reversed(jobs)), size) == waves


def test_wave_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_waves(JOBS, 0)


def test_a_rotation_walks_its_waves_then_retires() -> None:
    state = fresh().created("new-id", JOBS, NOW)
    assert state.stage is Stage.ROLLING and state.nonce == "ca-r1"
    assert [len(w) for w in state.waves] == [2, 2, 1]
    seen = []
    while state.stage is Stage.ROLLING:
        seen.append(state.current_wave())
        for key in state.current_wave():
            state = state.job_done(key, NOW)
        state = state.wave_finished(NOW)
    assert state.stage is Stage.RETIRING and len(seen) == 3
    assert sorted(state.done) == JOBS
    done = state.retired(NOW + timedelta(minutes=3))
    assert done.stage is Stage.DONE and not done.active and done.finished_at is not None


def test_nothing_meshed_goes_straight_to_retiring() -> None:
    assert fresh().created("new-id", [], NOW).stage is Stage.RETIRING


def test_the_record_round_trips_through_variable_items_at_every_stage() -> None:
    state = fresh().created("new-id", JOBS, NOW).wrote(JOBS[0], 77, NOW)
    state = state.job_done(JOBS[0], NOW)
    items = state.to_items()
    assert all(isinstance(v, str) for v in items.values())
    back = RotationState.from_items(items)
    assert back == state and back.written_index(JOBS[0]) == 77
    failed = state.failed("wave 1/3 failed: default/job1: deployment x: unhealthy", NOW)
    assert RotationState.from_items(failed.to_items()) == failed


def test_a_corrupt_record_is_reported_not_guessed() -> None:
    items = fresh().to_items()
    for broken in ({**items, "stage": "dancing"}, {**items, "waves": "[["}, {"id": "x"}):
        with pytest.raises(CorruptState):
            RotationState.from_items(broken)


def test_resume_continues_at_the_wave_in_progress_without_redoing_done_jobs() -> None:
    state = fresh().created("new-id", JOBS, NOW)
    state = state.job_done(JOBS[0], NOW).job_done(JOBS[1], NOW).wave_finished(NOW)
    state = state.job_done(JOBS[2], NOW)  # the driver dies mid-wave 2
    back = RotationState.from_items(state.to_items())
    assert back.wave == 1 and back.current_wave() == (JOBS[2], JOBS[3])
    assert [k for k in back.current_wave() if k not in back.done] == [JOBS[3]]


def test_only_an_orphaned_rotation_is_taken_over() -> None:
    state = fresh().created("new-id", JOBS, NOW)
    later = NOW + timedelta(seconds=30)
    assert state.orphaned("me", later, stale_after=60)  # my own record, from before a crash
    assert not state.orphaned("other", later, stale_after=60)  # its driver is alive
    assert state.orphaned("other", NOW + timedelta(seconds=61), stale_after=60)
    assert not state.retired(NOW).orphaned("other", NOW + timedelta(days=1), stale_after=60)


def test_a_failed_wave_stops_the_rotation_and_a_retry_runs_that_wave_again() -> None:
    state = fresh().created("new-id", JOBS, NOW).wave_finished(NOW)
    failed = state.failed("wave 2/3 failed: default/job2: deployment abc: unhealthy", NOW)
    assert failed.stage is Stage.FAILED and not failed.active
    assert failed.orphaned("other", NOW + timedelta(days=1), 60) is False
    again = failed.retry("operator", NOW)
    assert again.stage is Stage.ROLLING and again.wave == 1 and again.owner == "operator"
    early = fresh().failed("vault sealed", NOW).retry("operator", NOW)
    assert early.stage is Stage.CREATING  # no issuer was made yet: create it (by name) again


def test_leftovers_found_at_retirement_get_an_extra_wave() -> None:
    state = fresh().created("new-id", JOBS[:2], NOW)
    for key in JOBS[:2]:
        state = state.job_done(key, NOW)
    state = state.wave_finished(NOW)
    extra = state.extra_wave([JOBS[1], JOBS[4]], NOW)
    assert extra.stage is Stage.ROLLING and extra.current_wave() == (JOBS[1], JOBS[4])
    assert JOBS[1] not in extra.done and JOBS[0] in extra.done


# --- judging one job ---------------------------------------------------------------------------

PORT = FrontedPort("web", "web", "http", Mode.STRICT, "web.service.consul")
NEW, OLD = "aa" * 20, "bb" * 20


def seen(*akis: str | None, running: int = 2, unhealthy: bool = False) -> Observation:
    job = {"ID": "web", "TaskGroups": [{"Name": "web", "Count": 2}]}
    probed = []
    for n, aki in enumerate(akis):
        entry = HealthEntry("n", "127.0.0.1", f"s{n}", "web", "", 1, (), (), {})
        inst = Instance(PORT, f"a{n}", entry)
        target = ProbeTarget("127.0.0.1", n, "web.service.consul")
        if aki is None:
            probed.append((inst, ProbeResult(target, ProbeOutcome.UNREACHABLE, "refused")))
            continue
        leaf = LeafInfo("CN=w", "CN=i", "01", NOW, NOW + timedelta(hours=1), aki, ())
        probed.append((inst, ProbeResult(target, ProbeOutcome.OK, "verified", leaf=leaf)))
    findings = ConsulFindings(instances=[i for i, _ in probed], allocations=running)
    if unhealthy:
        findings.unhealthy.append(("ChecksFailing", "web: allocation a0 is critical"))
    return Observation(
        job=job,
        ports=[PORT],
        running={"web": [f"a{n}" for n in range(running)]},
        findings=findings,
        probed=probed,
    )


@pytest.mark.parametrize(
    ("observation", "deployment", "state", "why"),
    [
        (seen(NEW, NEW), None, "done", "2 instance(s) on the new issuer"),
        (seen(NEW, OLD), None, "waiting", "1 instance(s) still serve a leaf of the old issuer"),
        (seen(NEW, None), None, "waiting", "unreachable"),
        (seen(NEW, running=1), None, "waiting", "1/2 allocation(s) running"),
        (seen(NEW, NEW, unhealthy=True), None, "waiting", "critical"),
        (
            seen(NEW, OLD),
            {"ID": "dep12345x", "JobModifyIndex": 50, "Status": "failed",
             "StatusDescription": "Failed due to unhealthy allocations"},
            "failed",
            "deployment dep12345: Failed due to unhealthy allocations",
        ),
        (  # an older version's failed deployment is not ours to judge by
            seen(NEW, NEW),
            {"ID": "d", "JobModifyIndex": 10, "Status": "failed"},
            "done",
            "new issuer",
        ),
        (Observation(job=None), None, "done", "gone"),
    ],
)  # fmt: skip
def test_job_verdicts(
    observation: Observation, deployment: dict[str, Any] | None, state: str, why: str
) -> None:
    verdict = judge_job(observation, NEW, deployment, written_index=50)
    assert verdict.state == state and why in verdict.reason


def test_old_leaves_are_counted_per_instance() -> None:
    assert old_leaves(seen(NEW, OLD, OLD), OLD) == 2
    assert old_leaves(seen(NEW, None), OLD) == 0
