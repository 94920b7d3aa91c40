"""Rendering of the status report: a rich table (``table``/``wide``) or the JSON contract.

The table answers "is anything wrong, and what" at a glance: a ✔/× mark first, counts as
``have/want``, the certificate as time left, and on a drifting row the first reason it drifts
(all of them in ``wide``). Colours only on a terminal; piped output is plain text with no
escape codes, wide enough not to wrap.
"""

from __future__ import annotations

import json
from datetime import datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from controller.ctl.common import human_duration
from controller.ctl.rotation_view import rotation_body
from crds_equivalent.status_report import (
    CertSummary,
    EdgeRow,
    LeaderInfo,
    StatusReport,
    StatusRow,
)

OK_MARK = "✔"
BAD_MARK = "×"
WARN_MARK = "‼"
PLAIN_WIDTH = 220


def make_console(file: object = None, *, tty: bool | None = None) -> Console:
    """A console for stdout (or ``file``); plain and wide when it is not a terminal."""
    console = Console(file=file, highlight=False, soft_wrap=False)  # type: ignore[arg-type]
    is_tty = console.is_terminal if tty is None else tty
    if not is_tty:
        console = Console(
            file=file,  # type: ignore[arg-type]
            highlight=False,
            no_color=True,
            color_system=None,
            force_terminal=False,
            width=PLAIN_WIDTH,
            soft_wrap=False,
        )
    return console


def to_json(report: StatusReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def _count(have: int, want: int) -> Text:
    return Text(f"{have}/{want}", style="" if have >= want else "red")


def cert_text(cert: CertSummary) -> Text:
    if cert.expires_in_seconds is None:
        left = "-"
    elif cert.expires_in_seconds < 0:
        left = f"expired {human_duration(-cert.expires_in_seconds)} ago"
    else:
        left = human_duration(cert.expires_in_seconds)
    state = "" if cert.issuer_state == "unknown" else f" {cert.issuer_state}"
    soon = cert.expires_in_seconds is not None and cert.expires_in_seconds < 86400
    return Text(left + state, style="red" if soon else "yellow" if state == " old" else "")


def _message(row: StatusRow, wide: bool) -> str:
    if row.drift and not wide:
        more = f" (+{len(row.drift) - 1} more)" if len(row.drift) > 1 else ""
        return row.drift[0] + more
    if not row.message and row.warnings:  # said, but not drift: the mark stays ✔
        return f"{WARN_MARK} " + "; ".join(row.warnings)
    return row.message


def _row_cells(row: StatusRow, wide: bool) -> list[RenderableType]:
    mark = Text(OK_MARK, style="green") if row.in_sync else Text(BAD_MARK, style="bold red")
    job = row.job if row.namespace == "default" or wide else f"{row.namespace}/{row.job}"
    injected = row.injected or "-"
    cells: list[RenderableType] = [mark]
    if wide:
        cells.append(row.namespace)
    cells += [job, row.group or "-", row.service or "-"]
    if wide:
        cells.append(row.port or "-")
    cells += [
        row.mode or "-",
        Text(injected, style="" if injected in ("current", "-") else "red"),
        _count(row.allocs.running, row.allocs.desired) if row.allocs else "-",
        _count(row.tls.passing, row.tls.registered) if row.tls else "-",
        Text(str(row.plaintext), style="red" if row.plaintext else "")
        if row.plaintext is not None
        else "-",
        cert_text(row.cert),
        Text(row.phase, style="green" if row.phase == "Ready" else "yellow"),
        _message(row, wide),
    ]
    if wide:
        cells += [row.cert.issuer or "-", ", ".join(row.upstreams) or "-"]
        cells += [", ".join(row.allow) or "-", "; ".join(row.drift) or "-"]
    return cells


def rows_table(report: StatusReport, *, wide: bool = False) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold")
    heads = [""]
    heads += ["NAMESPACE"] if wide else []
    heads += ["JOB", "GROUP", "SERVICE"]
    heads += ["PORT"] if wide else []
    heads += ["MODE", "INJECTED", "ALLOCS", "TLS", "PLAINTEXT", "CERT", "PHASE", "MESSAGE"]
    heads += ["ISSUER", "UPSTREAMS", "ALLOW", "DRIFT"] if wide else []
    for head in heads:
        table.add_column(head, overflow="fold" if head in ("MESSAGE", "DRIFT") else "ellipsis")
    for row in report.rows:
        table.add_row(*_row_cells(row, wide))
    return table


EDGE_STYLE = {
    "healthy": "green",
    "empty": "red",
    "not meshed": "red",
    "handshake failed": "red",
    "unknown": "yellow",
}


def _edge_cells(edge: EdgeRow, wide: bool) -> list[RenderableType]:
    mark = Text(OK_MARK, style="green") if edge.in_sync else Text(BAD_MARK, style="bold red")
    job = edge.job if edge.namespace == "default" else f"{edge.namespace}/{edge.job}"
    cells: list[RenderableType] = [
        mark,
        f"{job}/{edge.group}",
        "→",
        f"{edge.service}:{edge.port}/{edge.protocol}@{edge.provider}",
        "-" if edge.healthy is None else str(edge.healthy),
        Text(edge.state, style=EDGE_STYLE[edge.state]),
    ]
    if wide:
        cells.append(edge.source)
    shook = f"last handshake error: {edge.handshake_error}" if edge.handshake_error else ""
    return [*cells, edge.message or shook]


def edges_table(report: StatusReport, *, wide: bool = False) -> Table:
    """One line per upstream edge: caller job/group → service:port, and what is behind it."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold")
    heads = ["", "CALLER", "", "UPSTREAM", "HEALTHY", "STATE"]
    heads += ["SOURCE"] if wide else []
    for head in [*heads, "MESSAGE"]:
        table.add_column(head, overflow="fold" if head == "MESSAGE" else "ellipsis")
    for edge in report.edges:
        table.add_row(*_edge_cells(edge, wide))
    return table


def _since(leader: LeaderInfo, now: datetime) -> str:
    try:
        when = datetime.fromisoformat(leader.since.replace("Z", "+00:00"))
    except ValueError:
        return leader.since or "?"
    return f"{leader.since} ({human_duration((now - when).total_seconds())} ago)"


def header(report: StatusReport) -> Text:
    now = datetime.fromisoformat(report.generated_at)
    text = Text()
    leader = report.leader
    if leader is None:
        text.append("Leader    none: no controller has ever taken the lock\n", style="red")
    else:
        who = leader.identity or "?"
        version = f" ({leader.version})" if leader.version else ""
        style = "red" if leader.lock == "released" else ""
        text.append(f"Leader    {who}{version} since {_since(leader, now)}; ", style=style)
        text.append(f"lock {leader.lock}\n", style=style)
        if leader.last_event_index is not None:
            age = leader.last_event_age_seconds
            ago = f", last line {age:.1f}s ago" if age is not None else ""
            queue = f"; queue depth {leader.queue_depth}" if leader.queue_depth is not None else ""
            text.append(f"Events    last index {leader.last_event_index}{ago}{queue}\n")
        else:
            text.append(f"Events    unknown ({leader.status_error or 'no event index'})\n")
    parts = []
    for backend in report.backends:
        if not backend.consulted:
            parts.append(f"{backend.name} (not consulted)")
        else:
            parts.append(f"{backend.name} {OK_MARK if backend.ok else BAD_MARK} {backend.address}")
    text.append("Backends  " + " · ".join(parts) + "\n")
    if report.rotation is not None:
        rotation = report.rotation
        failed = bool(rotation.error or rotation.last_error)
        style = "red" if failed else "yellow" if rotation.active else ""
        text.append("Rotation  " + rotation_body(rotation, now) + "\n", style=style)
    return text


def footer(report: StatusReport) -> Text:
    style = "green" if report.exit_code == 0 else "red"
    mark = OK_MARK if report.exit_code == 0 else BAD_MARK
    return Text(f"{mark} {report.summary} (exit {report.exit_code})", style=style)


def report_view(report: StatusReport, *, wide: bool = False) -> Group:
    parts: list[RenderableType] = [header(report)]
    if report.rows:
        parts.append(rows_table(report, wide=wide))
    if report.edges:
        parts.append(edges_table(report, wide=wide))
    parts.append(footer(report))
    return Group(*parts)
