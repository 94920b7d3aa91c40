"""The per-job drift verdict behind ``controllerctl status``, as a pure model.

It joins the stored status records with (optionally) what the cluster says now — each meshed
job's current JobModifyIndex and marker hash — and names every kind of drift an operator acts
on: a job not Ready, a False condition, a record older than the job, a marker that does not
match the hash we wrote, a leaf near expiry, a meshed job with no record, a record for a job
that is gone. ``ctl.rows`` turns these verdicts into the report's rows (one per service); the
leader and the exit code are judged there and in ``ctl.report``. No I/O here; callers fetch
and pass the data in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionStatus, MeshStatus, Phase


@dataclass(frozen=True, slots=True)
class LiveJob:
    """What Nomad says about a job now: its JobModifyIndex and the marker hashes it carries."""

    job_modify_index: int
    markers: tuple[str, ...] = ()
    meshed: bool = True


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job's verdict: its recorded phase and every reason it drifts (none: in sync)."""

    namespace: str
    job: str
    phase: str
    drift: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.drift


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _drift(
    status: MeshStatus, live: LiveJob | None, has_live: bool, now: datetime, warn: timedelta
) -> list[str]:
    out: list[str] = []
    if status.phase == Phase.REMOVED:
        return out
    if status.phase != Phase.READY:  # with why, e.g. "waiting for canary promotion of ..."
        out.append(
            f"phase {status.phase}: {status.message}" if status.message else f"phase {status.phase}"
        )
    out.extend(
        f"{c.type} is False ({c.reason})" if c.reason else f"{c.type} is False"
        for c in status.conditions
        if c.status == ConditionStatus.FALSE
    )
    if has_live:
        if live is None:
            out.append("job is gone but its status record remains")
        else:
            if status.observed_index and live.job_modify_index > status.observed_index:
                out.append(
                    f"job changed (index {live.job_modify_index}) since it was reconciled "
                    f"(index {status.observed_index})"
                )
            if status.spec_hash and live.markers and status.spec_hash not in live.markers:
                out.append("marker on the job does not match the recorded spec hash")
    expiry = _parse_time(status.cert_not_after) if status.cert_not_after else None
    if expiry is not None and expiry - now < warn:
        out.append(f"certificate expires {status.cert_not_after}")
    return out


def build_report(
    statuses: Mapping[JobKey, MeshStatus],
    *,
    now: datetime,
    live: Mapping[JobKey, LiveJob] | None = None,
    cert_warning: timedelta = timedelta(hours=24),
) -> tuple[JobRow, ...]:
    """One row per job (sorted), drift reasons included. ``live=None`` skips cluster checks."""
    rows: list[JobRow] = []
    for key in sorted(statuses):
        status = statuses[key]
        found = live.get(key) if live is not None else None
        drift = _drift(status, found, live is not None, now, cert_warning)
        rows.append(
            JobRow(
                namespace=key[0],
                job=key[1],
                phase=str(status.phase),
                drift=tuple(drift),
            )
        )
    for key in sorted(set(live or {}) - set(statuses)):
        if (live or {})[key].meshed:
            rows.append(
                JobRow(namespace=key[0], job=key[1], phase="Unknown", drift=("no status record",))
            )
    rows.sort(key=lambda r: (r.namespace, r.job))
    return tuple(rows)
