"""PURE: one line about the CA rotation, for the ``controllerctl status`` header and ``check``.

A rotation rolls every meshed job, wave after wave, for minutes to hours; an operator looking at
the status while it runs must see that it runs, how far it got and whether it stopped, not only
jobs whose leaves change issuer under them. The numbers come from
``reconcilers.rotation.view.summarize`` (the same ones /status serves).
"""

from __future__ import annotations

from datetime import datetime

from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import human_duration
from crds_equivalent.status_report import RotationSummary

ROTATION_SECTION = "CA rotation"
ROTATION_CHECK = "intermediate CA rotation"
HINT_FAILED = (
    "read the last error, fix its cause, then run `controllerctl rotate-ca`: it resumes the "
    "failed wave (the controller leaves a failed rotation alone)"
)
HINT_ACTIVE = "watch it with `controllerctl status --watch`; jobs roll under their update blocks"


def _ago(stamp: str, now: datetime) -> str:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp or "?"
    return f"{stamp} ({human_duration((now - when).total_seconds())} ago)"


def progress(rotation: RotationSummary) -> str:
    """``issuer a → b, wave k/n, jobs done d / left l``."""
    to = rotation.new_issuer or "(being created)"
    text = f"issuer {rotation.old_issuer} → {to}, wave {rotation.wave}/{rotation.waves}, "
    text += f"jobs done {rotation.jobs_done} / left {rotation.jobs_left}"
    if rotation.skipped:
        text += f" ({rotation.skipped} skipped)"
    return text


def rotation_body(rotation: RotationSummary, now: datetime) -> str:
    """``<id> <stage>: issuer a → b, wave k/n, jobs done d / left l, started …`` and, by
    stage, the driver's last step, the last error, or when it finished."""
    if rotation.error:
        return f"{rotation.id or '?'}: unreadable record: {rotation.error}"
    head = f"{rotation.id} {rotation.stage}: {progress(rotation)}"
    if rotation.active:
        text = f"{head}, started {_ago(rotation.started_at, now)}"
        return text + (f"; {rotation.message}" if rotation.message else "")
    if rotation.last_error:
        started = _ago(rotation.started_at, now)
        return f"{head}, started {started}, last error: {rotation.last_error}"
    return f"{head}, finished {_ago(rotation.finished_at, now)}"


def rotation_line(rotation: RotationSummary, now: datetime) -> str:
    """The line ``check`` prints: ``CA rotation <body>``."""
    return f"CA rotation {rotation_body(rotation, now)}"


def rotation_check(rotation: RotationSummary | None, now: datetime) -> CheckResult | None:
    """A check line while a rotation runs (‼) or after it failed (×); None otherwise: a done
    rotation needs nothing from anyone."""
    if rotation is None:
        return None
    if rotation.error:
        return CheckResult(
            ROTATION_SECTION,
            ROTATION_CHECK,
            Mark.FAIL,
            rotation_body(rotation, now),
            "the record mesh-controller/rotation is not one this version reads",
        )
    if rotation.active:
        return CheckResult(
            ROTATION_SECTION, ROTATION_CHECK, Mark.WARN, rotation_body(rotation, now), HINT_ACTIVE
        )
    if rotation.stage == "failed":
        return CheckResult(
            ROTATION_SECTION, ROTATION_CHECK, Mark.FAIL, rotation_body(rotation, now), HINT_FAILED
        )
    return None
