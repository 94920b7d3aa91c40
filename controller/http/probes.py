"""What /healthz and /readyz decide, as pure functions over a snapshot of the process.

A supervisor restarts a process whose liveness probe fails and routes nothing to one that is not
ready, so the two must mean different things:
- healthy: the event loop still turns, and — only while we lead — the event stream is alive
  (a line, even a ``{}`` heartbeat, within ``2 x`` the stream watchdog). A standby has no
  stream, and restarting it would not help anything.
- ready: a standby is ready (it answers /status and waits for the lock); a leader is ready once
  its first LIST has enqueued every meshed job (``synced``).
The snapshot is taken by the composition root; this module does no I/O and reads no clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaderFacts:
    """What the controller side knows (ages in seconds, from one clock)."""

    leading: bool
    synced: bool
    leading_for: float | None = None  # since we became leader (None: not leading)
    last_line_age: float | None = None  # since the stream's last line (None: no line yet)


@dataclass(frozen=True, slots=True)
class ProbeState:
    """One consistent look at the process."""

    facts: LeaderFacts
    loop_tick_age: float  # seconds since the loop monitor last ran
    stream_limit: float  # 2 x the stream watchdog
    loop_limit: float


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str


def health(state: ProbeState) -> Verdict:
    """Liveness: the loop runs; a leader's stream has spoken recently."""
    if state.loop_tick_age > state.loop_limit:
        return Verdict(False, f"event loop stalled: no tick for {state.loop_tick_age:.1f}s")
    facts = state.facts
    if not facts.leading:
        return Verdict(True, "standby")
    # Before the first line arrives, measure from the election (the first LIST may be slow).
    ages = [a for a in (facts.last_line_age, facts.leading_for) if a is not None]
    age = min(ages) if ages else 0.0
    if age > state.stream_limit:
        return Verdict(
            False,
            f"event stream silent for {age:.1f}s (limit {state.stream_limit:.1f}s)",
        )
    return Verdict(True, "leader, stream fresh")


def readiness(state: ProbeState) -> Verdict:
    """Readiness: standby, or a leader whose first LIST is done."""
    if not state.facts.leading:
        return Verdict(True, "standby")
    if state.facts.synced:
        return Verdict(True, "leader, synced")
    return Verdict(False, "leader, initial LIST not finished")
