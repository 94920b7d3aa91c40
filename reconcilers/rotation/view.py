"""PURE: a rotation record as the operator sees it (``controllerctl status``, ``check``, /status).

The record (``state``) is shaped for resuming: waves of job keys, a 0-based wave index that
runs past the end once every wave is done, ``done`` that includes skipped jobs. The summary
turns that into the numbers an operator asks for — wave k of n, jobs done and left, what went
wrong — once, here, so the three views cannot count differently.
"""

from __future__ import annotations

from collections.abc import Mapping

from crds_equivalent import keys
from crds_equivalent.status_report import RotationSummary
from reconcilers.ports import VariableStore
from reconcilers.rotation.state import CorruptState, RotationState, Stage


def summarize(state: RotationState) -> RotationSummary:
    """The summary of one record."""
    waves = len(state.waves)
    wave = min(state.wave + 1, waves) if waves else 0
    done = len(state.done)
    return RotationSummary(
        id=state.id,
        stage=str(state.stage),
        active=state.active,
        old_issuer=state.old_issuer,
        new_issuer=state.new_issuer,
        wave=wave,
        waves=waves,
        jobs_done=done,
        jobs_left=max(0, state.total_jobs - done),
        skipped=len(state.skipped),
        started_at=state.started_at.isoformat(),
        updated_at=state.heartbeat.isoformat(),
        finished_at=state.finished_at.isoformat() if state.finished_at else "",
        owner=state.owner,
        message=state.message,
        last_error=state.message if state.stage is Stage.FAILED else "",
    )


def summarize_items(items: Mapping[str, str] | None) -> RotationSummary | None:
    """The summary of the Variable's Items (None: no rotation recorded); a record this version
    cannot read is a summary that says so, not an exception: a view must still render."""
    if not items:
        return None
    try:
        return summarize(RotationState.from_items(items))
    except CorruptState as exc:
        return RotationSummary(id=items.get("id", ""), error=str(exc))


async def read_summary(store: VariableStore) -> RotationSummary | None:
    """Read ``mesh-controller/rotation`` and summarize it (the store's errors propagate)."""
    var = await store.get(keys.VAR_ROTATION)
    return summarize_items(var.items if var is not None else None)
