"""Rotation in view: the summary of a ``mesh-controller/rotation`` record, and how
``controllerctl status`` (header, JSON), ``controllerctl check`` and /status show it.

The record counts for resuming (a 0-based wave that runs past the end, ``done`` with skipped
jobs in it); the views count for an operator (wave k of n, jobs done and left). One summary
feeds every view so they cannot disagree.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from controller.ctl.checks import Mark
from controller.ctl.report import assemble
from controller.ctl.rotation_view import rotation_body, rotation_check, rotation_line
from controller.ctl.table import make_console, report_view, to_json
from controller.http.status_view import StatusView
from controller.runtime.clock import FakeClock
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status_report import Backend, LeaderInfo, RotationSummary
from reconcilers.rotation.state import RotationState, new_rotation
from reconcilers.rotation.view import summarize, summarize_items

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NOW = START + timedelta(minutes=5)
JOBS = [JobKey("default", f"j{i}") for i in range(5)]


def rolling() -> RotationState:
    """Five jobs in waves of two; the first wave done, one job of the second done."""
    state = new_rotation("r1", "int-old", trigger="cli", owner="me", wave_size=2, now=START)
    state = state.created("int-new", JOBS, START + timedelta(seconds=5))
    state = state.job_done(JOBS[0], NOW).job_done(JOBS[1], NOW).wave_finished(NOW)
    return state.job_done(JOBS[2], NOW)


def test_a_rolling_rotation_counts_waves_from_one_and_jobs_done_and_left() -> None:
    summary = summarize(rolling())
    assert (summary.stage, summary.active) == ("rolling", True)
    assert (summary.wave, summary.waves) == (2, 3)
    assert (summary.jobs_done, summary.jobs_left) == (3, 2)
    assert (summary.old_issuer, summary.new_issuer) == ("int-old", "int-new")
    assert summary.started_at == START.isoformat() and summary.last_error == ""
    assert rotation_body(summary, NOW) == (
        "r1 rolling: issuer int-old → int-new, wave 2/3, jobs done 3 / left 2, "
        f"started {START.isoformat()} (5m ago); wave 1/3 done"
    )


def test_a_rotation_being_created_has_no_wave_and_no_new_issuer_yet() -> None:
    state = new_rotation("r0", "int-old", trigger="auto", owner="me", wave_size=2, now=START)
    summary = summarize(state)
    assert (summary.wave, summary.waves, summary.jobs_left) == (0, 0, 0)
    assert "issuer int-old → (being created), wave 0/0" in rotation_body(summary, NOW)


def test_every_wave_done_shows_n_of_n_and_a_failure_shows_the_last_error() -> None:
    state = rolling().job_done(JOBS[3], NOW).wave_finished(NOW)
    assert summarize(state).wave == 3  # the last wave, not "4/3"
    failed = state.failed("job default/j4: deployment d-9 failed", NOW)
    summary = summarize(failed)
    assert (summary.stage, summary.active) == ("failed", False)
    assert summary.last_error == "job default/j4: deployment d-9 failed"
    assert rotation_line(summary, NOW).endswith(
        ", last error: job default/j4: deployment d-9 failed"
    )
    assert rotation_line(summary, NOW).startswith("CA rotation r1 failed: issuer int-old")


def test_check_warns_while_rotating_fails_after_a_failure_and_is_quiet_when_done() -> None:
    active = rotation_check(summarize(rolling()), NOW)
    assert active is not None and active.mark is Mark.WARN
    assert "wave 2/3" in active.detail
    failed = rotation_check(summarize(rolling().failed("wave timed out", NOW)), NOW)
    assert failed is not None and failed.mark is Mark.FAIL
    assert "last error: wave timed out" in failed.detail and "rotate-ca" in failed.hint
    done = rolling().retired(NOW)
    assert rotation_check(summarize(done), NOW) is None
    assert rotation_check(None, NOW) is None


def test_an_unreadable_record_is_a_summary_that_says_so() -> None:
    summary = summarize_items({"id": "r7", "stage": "flying"})
    assert summary is not None and summary.id == "r7" and "unreadable" in summary.error
    found = rotation_check(summary, NOW)
    assert found is not None and found.mark is Mark.FAIL
    assert summarize_items({}) is None and summarize_items(None) is None
    assert summarize_items(rolling().to_items()) == summarize(rolling())


def status_text(rotation: RotationSummary | None) -> str:
    leader = LeaderInfo(identity="node-1/42", since=START.isoformat(), lock="held")
    nomad = Backend(name="nomad", address="http://n", consulted=True, ok=True)
    report = assemble(None, now=NOW, live=False, leader=leader, backends=[nomad], rotation=rotation)
    out = io.StringIO()
    make_console(out).print(report_view(report))
    return out.getvalue()


def test_the_status_header_shows_the_rotation_and_json_carries_it() -> None:
    summary = summarize(rolling())
    text = status_text(summary)
    assert "Rotation  r1 rolling: issuer int-old → int-new, wave 2/3, jobs done 3 / left 2" in text
    assert "Rotation" not in status_text(None)
    leader = LeaderInfo(identity="node-1/42", since=START.isoformat(), lock="held")
    doc = json.loads(
        to_json(assemble(None, now=NOW, live=False, leader=leader, backends=[], rotation=summary))
    )
    assert doc["rotation"]["wave"] == 2 and doc["rotation"]["waves"] == 3
    assert doc["rotation"]["jobs_done"] == 3 and doc["rotation"]["jobs_left"] == 2


class _Nobody:
    phases: dict[JobKey, object] = {}
    writes: dict[str, int] = {}
    last_index = 0
    last_line_time = None
    lists = 0
    is_leader = False
    leader_since = None
    identity = "me/1"
    version = "0"
    waiting = 0
    in_flight: frozenset[JobKey] = frozenset()

    def is_synced(self) -> bool:
        return True

    async def holder(self) -> None:
        return None

    def __len__(self) -> int:
        return 0


class RecordGone(Exception):
    pass


@pytest.mark.parametrize("fails", [False, True])
async def test_status_endpoint_reads_the_rotation_and_never_raises(fails: bool) -> None:
    async def read() -> RotationSummary | None:
        if fails:
            raise RecordGone("403 from Nomad")
        return summarize(rolling())

    parts = _Nobody()
    view = StatusView(
        book=parts,  # type: ignore[arg-type]
        source=parts,
        leadership=parts,  # type: ignore[arg-type]
        lock=parts,  # type: ignore[arg-type]
        queue=parts,
        clock=FakeClock(),
        holder_timeout=1.0,
        lock_errors=(RecordGone,),
        rotation=read,
    )
    doc = await view.status()
    if fails:
        assert doc["rotation"] == {"error": "cannot read the rotation record: 403 from Nomad"}
    else:
        assert (doc["rotation"]["wave"], doc["rotation"]["waves"]) == (2, 3)
        assert doc["rotation"]["stage"] == "rolling"
