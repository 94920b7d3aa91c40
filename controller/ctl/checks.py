"""PURE: the verdicts of ``controllerctl check`` — one line each, ✔ / × / ‼, and a hint.

Probes (``controller.ctl.probes_*``) fetch facts; the judgements and their thresholds live here
so they are table-tested. Conventions, after ``linkerd check``: × fails the check (exit 1), ‼
is worth knowing but not failing (exit 0), and a backend that cannot be reached at all makes
the run exit 2, as for ``status``. Every × and ‼ carries a hint that says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.ctl.common import EXIT_DRIFT, EXIT_OK, EXIT_UNREACHABLE, human_duration

MIN_NOMAD = (1, 7, 0)  # Variable locks
INTERMEDIATE_MIN_DAYS = 30
ROOT_MIN_DAYS = 180
SKEW_WARN_S = 2.0  # Date headers have a resolution of one second
SKEW_FAIL_S = 10.0  # the leader lease TTL defaults to 15 s


class Mark(StrEnum):
    OK = "✔"
    FAIL = "×"
    WARN = "‼"


@dataclass(frozen=True)
class CheckResult:
    section: str
    name: str
    mark: Mark
    detail: str = ""
    hint: str = ""
    unreachable: bool = False  # a backend did not answer at all: exit 2

    def to_json(self) -> dict[str, object]:
        return {
            "section": self.section,
            "check": self.name,
            "result": {Mark.OK: "ok", Mark.FAIL: "fail", Mark.WARN: "warn"}[self.mark],
            "detail": self.detail,
            "hint": self.hint,
            "unreachable": self.unreachable,
        }


def exit_code(results: Sequence[CheckResult]) -> int:
    if any(r.unreachable for r in results):
        return EXIT_UNREACHABLE
    return EXIT_DRIFT if any(r.mark is Mark.FAIL for r in results) else EXIT_OK


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def nomad_version(section: str, version: str) -> CheckResult:
    name = "Nomad is at least 1.7 (Variable locks for leader election)"
    parsed = parse_version(version)
    if parsed is None:
        return CheckResult(
            section, name, Mark.WARN, f"version {version!r} not understood", "check `nomad version`"
        )
    if parsed < MIN_NOMAD:
        return CheckResult(
            section,
            name,
            Mark.FAIL,
            f"Nomad {version}",
            "upgrade Nomad to 1.7 or later: the controller elects its leader with a Variable lock",
        )
    return CheckResult(section, name, Mark.OK, f"Nomad {version}")


def clock_skew(section: str, what: str, remote: datetime | None, local: datetime) -> CheckResult:
    name = f"no clock skew against {what}"
    if remote is None:
        return CheckResult(section, name, Mark.WARN, f"{what} did not say its time")
    skew = (remote - local).total_seconds()
    # Both clocks are read in whole seconds (Date header, server_time_utc): <1 s is no skew.
    if -1.0 < skew <= 0:
        return CheckResult(section, name, Mark.OK, f"{what} agrees to within its 1s resolution")
    detail = f"{what} is {abs(skew):.1f}s {'ahead' if skew > 0 else 'behind'}"
    hint = "run NTP (chrony/systemd-timesyncd) on this host and the servers"
    if abs(skew) > SKEW_FAIL_S:
        return CheckResult(
            section, name, Mark.FAIL, detail, hint + "; lock TTLs and expiry math need it"
        )
    if abs(skew) > SKEW_WARN_S:
        return CheckResult(section, name, Mark.WARN, detail, hint)
    return CheckResult(section, name, Mark.OK, detail)


def validity(
    section: str, what: str, not_after: datetime, now: datetime, min_days: int, hint: str
) -> CheckResult:
    name = f"{what} is valid for at least {min_days} days"
    left = (not_after - now).total_seconds()
    detail = f"expires {not_after.isoformat()} ({human_duration(left)} left)"
    if left <= 0:
        return CheckResult(section, name, Mark.FAIL, f"EXPIRED {not_after.isoformat()}", hint)
    if left < min_days * 86400:
        return CheckResult(section, name, Mark.FAIL, detail, hint)
    return CheckResult(section, name, Mark.OK, detail)


_BLOCK = re.compile(r'path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]', re.MULTILINE)


def required_capabilities(policy_hcl: str) -> dict[str, tuple[str, ...]]:
    """``path -> capabilities`` from a policy as ``controller.vault.policies`` writes it; a
    ``+`` segment becomes ``default`` so the path can be asked about (sys/capabilities-self)."""
    out: dict[str, tuple[str, ...]] = {}
    for path, caps in _BLOCK.findall(policy_hcl):
        concrete = "/".join("default" if seg == "+" else seg for seg in path.split("/"))
        out[concrete] = tuple(c.strip().strip('"') for c in caps.split(",") if c.strip())
    return out


def missing_capabilities(
    required: Mapping[str, Sequence[str]], granted: Mapping[str, Sequence[str]]
) -> list[tuple[str, tuple[str, ...]]]:
    """(path, missing capabilities) for every path the token cannot use as needed."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for path, caps in required.items():
        have = set(granted.get(path, ()))
        if "root" in have:
            continue
        lacking = tuple(c for c in caps if c not in have)
        if lacking:
            out.append((path, lacking))
    return out


def vault_capabilities(
    section: str,
    who: str,
    required: Mapping[str, Sequence[str]],
    granted: Mapping[str, Sequence[str]],
) -> CheckResult:
    name = f"Vault token has the capabilities {who} needs"
    missing = missing_capabilities(required, granted)
    if not missing:
        return CheckResult(section, name, Mark.OK, f"{len(required)} paths probed")
    shown = "; ".join(f"{p}: {', '.join(c)}" for p, c in missing[:4])
    more = f" (+{len(missing) - 4} more)" if len(missing) > 4 else ""
    return CheckResult(
        section,
        name,
        Mark.FAIL,
        f"missing {shown}{more}",
        f"attach the policy the controller needs (`controllerctl bootstrap-pki` writes it) to "
        f"this token, or grant: {shown}",
    )


def leader(
    section: str,
    items: Mapping[str, str] | None,
    lock: str,
    ttl_seconds: float | None,
    now: datetime,
    status_leading: bool | None,
) -> CheckResult:
    """``lock`` is held / released / hidden / unknown (see controller.ctl.leader)."""
    name = "a controller leads and renews its lock"
    start_hint = "is the controller running? `nomad job status mesh-controller`"
    if items is None:
        return CheckResult(section, name, Mark.FAIL, "no controller ever took the lock", start_hint)
    who = items.get("identity") or "?"
    since = items.get("since", "")
    try:
        age = (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        age = None
    held_for = f" for {human_duration(age)}" if age is not None else ""
    if lock == "released":
        return CheckResult(
            section,
            name,
            Mark.FAIL,
            f"nobody holds the lock (last holder {who}, since {since or '?'})",
            start_hint + "; a leader that cannot renew exits, so look at its last logs",
        )
    if lock == "held":
        if ttl_seconds and age is not None and age > ttl_seconds:
            renewed = f"; it has renewed its {human_duration(ttl_seconds)} lease to last that long"
        else:
            renewed = "; acquired within the last lease period"
        return CheckResult(section, name, Mark.OK, f"{who} holds the lock{held_for}{renewed}")
    if status_leading:
        return CheckResult(section, name, Mark.OK, f"{who} leads{held_for} (from its /status)")
    return CheckResult(
        section,
        name,
        Mark.WARN,
        f"holder Items name {who}{held_for}, but this token cannot see whether the lock is held",
        "Nomad shows lock state to management tokens only; use one, or set MESH_STATUS_URL",
    )


def event_stream(
    section: str, doc: Mapping[str, object] | None, error: str, limit_s: float
) -> CheckResult:
    name = "the leader's event stream is recent"
    hint = "set MESH_STATUS_URL (or --status-url) to the leader's MESH_HTTP_ADDR"
    if doc is None:
        return CheckResult(section, name, Mark.WARN, f"cannot tell: {error}", hint)
    if not doc.get("leading"):
        leader = doc.get("leader")
        who = leader.get("identity") if isinstance(leader, Mapping) else None
        return CheckResult(
            section, name, Mark.WARN, f"that controller is a standby (leader: {who or '?'})", hint
        )
    stream = doc.get("event_stream")
    stream = stream if isinstance(stream, Mapping) else {}
    index = stream.get("last_index")
    age = stream.get("last_line_age_s")
    if isinstance(age, int | float) and age > limit_s:
        return CheckResult(
            section,
            name,
            Mark.FAIL,
            f"last line {age:.0f}s ago (index {index}); Nomad sends a heartbeat every 10s",
            "the leader's stream is stuck: its /healthz fails and its supervisor should restart it",
        )
    when = f", last line {age:.1f}s ago" if isinstance(age, int | float) else ", no line yet"
    return CheckResult(section, name, Mark.OK, f"at index {index}{when}")
