"""PURE: rows + leader + backend answers -> the StatusReport, its exit code and summary line.

Exit codes follow the issue: 2 when Nomad, Consul or Vault could not be reached or read (the
report is then incomplete and must not be mistaken for "in sync"), else 1 on any drift, else 0.
Nobody holding the leader lock is drift too: with no leader, nothing reconciles. An upstream
edge that is empty, not meshed or failing its handshakes is drift (the caller's calls fail);
one whose catalog did not answer is not (the backend's error says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from controller.ctl.common import EXIT_DRIFT, EXIT_OK, EXIT_UNREACHABLE
from controller.ctl.edge_rows import build_edge_rows
from controller.ctl.rows import World, build_rows
from crds_equivalent.status_report import (
    Backend,
    EdgeRow,
    LeaderInfo,
    RotationSummary,
    StatusReport,
    StatusRow,
)


def leader_problem(leader: LeaderInfo | None) -> str:
    """Why the leadership itself is drift, or ""."""
    if leader is None:
        return "no controller has ever taken the leader lock"
    if leader.lock == "released":
        return f"no controller holds the leader lock (last holder {leader.identity or '?'})"
    return ""


def exit_code(
    rows: Sequence[StatusRow],
    leader: LeaderInfo | None,
    backends: Sequence[Backend],
    edges: Sequence[EdgeRow] = (),
) -> int:
    if any(b.consulted and not b.ok for b in backends):
        return EXIT_UNREACHABLE
    drifting = any(not r.in_sync for r in rows) or any(not e.in_sync for e in edges)
    if leader_problem(leader) or drifting:
        return EXIT_DRIFT
    return EXIT_OK


def summary(
    rows: Sequence[StatusRow],
    leader: LeaderInfo | None,
    backends: Sequence[Backend],
    edges: Sequence[EdgeRow] = (),
) -> str:
    down = [b for b in backends if b.consulted and not b.ok]
    if down:
        return "cannot read " + "; ".join(f"{b.name} ({b.error})" for b in down)
    drifting = sum(1 for r in rows if not r.in_sync)
    parts = []
    if not rows:
        parts.append("no meshed jobs")
    elif drifting:
        parts.append(f"{drifting} of {len(rows)} rows drifting")
    else:
        parts.append("1 row in sync" if len(rows) == 1 else f"all {len(rows)} rows in sync")
    failing = sum(1 for e in edges if not e.in_sync)
    if failing:
        parts.append(f"{failing} of {len(edges)} upstream edges failing")
    problem = leader_problem(leader)
    if problem:
        parts.append(problem)
    return "; ".join(parts)


def assemble(
    world: World | None,
    *,
    now: datetime,
    live: bool,
    leader: LeaderInfo | None,
    backends: Sequence[Backend],
    rotation: RotationSummary | None = None,
) -> StatusReport:
    """``world`` None: Nomad could not be read, so there are no rows to show. A rotation in
    progress is shown, not judged: jobs rolling under it show as drift on their own rows."""
    rows = build_rows(world) if world is not None else []
    edges = build_edge_rows(world) if world is not None else []
    code = exit_code(rows, leader, backends, edges)
    return StatusReport(
        generated_at=now.isoformat(),
        live=live,
        exit_code=code,
        in_sync=code == EXIT_OK,
        summary=summary(rows, leader, backends, edges),
        leader=leader,
        backends=list(backends),
        rows=rows,
        edges=edges,
        rotation=rotation,
    )
