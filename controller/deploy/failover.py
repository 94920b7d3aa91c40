"""PURE: who held the leader lock before and after an upgrade, and for how long nobody did.

An upgrade replaces every allocation of the system job, the leader's too, so it costs one
failover: the old leader drains and releases the lock on SIGTERM and a standby takes it (or,
if it vanished without releasing, after Nomad's 2 x TTL + LockDelay). The install watches the
lock Variable while the rollout runs; each sample says who held it then. A gap is measured
between the last sample that saw the old holder and the first that saw the new one, so it is
an upper bound, good to one poll interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Holder:
    """The lock holder as its Items name it (``alloc`` is "" for controllers that predate it)."""

    identity: str
    alloc: str = ""
    version: str = ""

    @classmethod
    def from_items(cls, items: Mapping[str, str]) -> Holder:
        return cls(items.get("identity", ""), items.get("alloc", ""), items.get("version", ""))

    def describe(self, job_versions: Mapping[str, int]) -> str:
        parts = [f"alloc {self.alloc[:8]}"] if self.alloc else []
        if self.alloc in job_versions:
            parts.append(f"job version {job_versions[self.alloc]}")
        if self.version:
            parts.append(f"controller {self.version}")
        return f"{self.identity} ({', '.join(parts)})" if parts else self.identity


@dataclass(frozen=True)
class Sample:
    at: float  # seconds on a monotonic clock
    holder: Holder | None  # None: the lock is free (or its Variable is gone)


@dataclass(frozen=True)
class Failover:
    """One change of holder: ``gap`` is an upper bound in seconds of the time without one."""

    before: Holder
    after: Holder
    gap: float


def failovers(before: Holder | None, samples: Sequence[Sample]) -> list[Failover]:
    """Every change of holder in ``samples``, starting from ``before`` (the holder just before
    the job was registered). A rolling update can cost more than one: the leader's node first,
    then the node of the old-version standby that took over."""
    out: list[Failover] = []
    current, last_seen = before, samples[0].at if samples else 0.0
    for sample in samples:
        holder = sample.holder
        if holder is None:
            continue
        if current is not None and holder != current:
            out.append(Failover(current, holder, max(0.0, sample.at - last_seen)))
        current, last_seen = holder, sample.at
    return out


def failover_lines(
    before: Holder | None,
    after: Holder | None,
    changes: Sequence[Failover],
    job_versions: Mapping[str, int],
    poll: float,
) -> list[str]:
    """What the report says about the lock, in words an operator can check in the log."""
    if before is None:
        held = f"now held by {after.describe(job_versions)}" if after else "still free"
        return [f"leader lock: free before this version was registered; {held}"]
    if not changes:
        now = "kept it" if after == before else "held it; nobody holds it now"
        return [f"leader lock: no failover; {before.describe(job_versions)} {now}"]
    lines = [
        f"failover: {c.before.describe(job_versions)} -> {c.after.describe(job_versions)}, "
        f"leaderless for at most {c.gap:.1f}s"
        for c in changes
    ]
    if after is None:
        lines.append("leader lock: nobody holds it now")
    lines.append(f"(the lock was read every {poll:g}s; a gap is good to one read)")
    return lines
