"""PURE: which leaves missed their renewal, and what to do about it given what was tried.

Nomad renews a ``pkiCert`` at 90 % of its life, or on Nomad 1.7.0–1.8.1 for a third of all
leaves as late as 99.1 % (``reconcilers.renewal`` has both rules from consul-template's
source). A leaf past ``STALE_FRACTION`` (99.5 %) of its life has missed its renewal under
either rule, so no healthy sidecar is restarted: the client was down, its template watcher
was lost on a restart (nomad#9491) or the reload signal was swallowed (nomad#24140).
The ladder, one rung at a time:

1. restart the allocation's ``mesh-tls-proxy`` task (the sidecar re-renders its templates on
   restart; ``pkiCert`` finds its file inside the renewal window and issues a fresh leaf, and a
   leaf that was renewed on disk but never loaded is loaded);
2. if after ``restart_grace`` the same allocation still serves the same serial, force a
   re-issue through a new job version (a rotation nonce, see ``reissue``);
3. if after ``reissue_grace`` the same serial is still served, stop and say so: more versions
   would not help where a new deployment did not.

Every step is recorded (``last_remediation`` in the status), so the ladder survives a restart
of the controller and a failover, and nothing is tried twice within its grace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from controller.tlsprobe import ProbeResult
from reconcilers import renewal
from reconcilers.instances.matching import Instance

STALE_FRACTION = renewal.STALE_FRACTION
RESTART = "restart"
REISSUE = "reissue"


@dataclass(frozen=True)
class Policy:
    stale_fraction: float = STALE_FRACTION
    restart_grace: float = 120.0  # seconds a restarted sidecar gets to serve a fresh leaf
    reissue_grace: float = 900.0  # seconds a re-issue roll-out gets before we give up


@dataclass(frozen=True)
class StaleLeaf:
    """An allocation serving a leaf past the stale point (or expired)."""

    alloc_id: str
    serial: str
    consumed: float  # fraction of the leaf's lifetime gone
    where: str


@dataclass(frozen=True)
class Record:
    """The last remediation of one job (the ``last_remediation`` status item, as JSON)."""

    kind: str
    at: datetime
    allocs: tuple[str, ...] = ()
    serials: Mapping[str, str] = field(default_factory=dict)  # alloc -> serial it served
    nonce: str = ""
    reason: str = ""

    def dumps(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "at": self.at.isoformat(),
                "allocs": list(self.allocs),
                "serials": dict(self.serials),
                "nonce": self.nonce,
                "reason": self.reason,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def loads(cls, text: str) -> Record | None:
        """The record, or None for "" or anything unreadable (treated as never remediated)."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            return cls(
                kind=str(raw["kind"]),
                at=datetime.fromisoformat(str(raw["at"])),
                allocs=tuple(str(a) for a in raw.get("allocs") or ()),
                serials={str(k): str(v) for k, v in (raw.get("serials") or {}).items()},
                nonce=str(raw.get("nonce") or ""),
                reason=str(raw.get("reason") or ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class Healthy:
    pass


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: str


@dataclass(frozen=True)
class Restart:
    leaves: tuple[StaleLeaf, ...]
    reason: str


@dataclass(frozen=True)
class Reissue:
    leaves: tuple[StaleLeaf, ...]
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: str
    retry_after: float


Decision = Healthy | Wait | Restart | Reissue | GiveUp


def stale_leaves(
    probed: Iterable[tuple[Instance, ProbeResult]], now: datetime, fraction: float
) -> list[StaleLeaf]:
    """One entry per allocation whose most worn leaf is past ``fraction`` of its life."""
    worst: dict[str, StaleLeaf] = {}
    for instance, result in probed:
        leaf = result.leaf  # also present for a rejected (e.g. expired) certificate
        if leaf is None or leaf.lifetime_seconds <= 0:
            continue
        consumed = (now - leaf.not_before).total_seconds() / leaf.lifetime_seconds
        if consumed < fraction:
            continue
        seen = worst.get(instance.alloc_id)
        if seen is None or consumed > seen.consumed:
            worst[instance.alloc_id] = StaleLeaf(
                instance.alloc_id, leaf.serial, consumed, str(result.target)
            )
    return [worst[a] for a in sorted(worst)]


def _describe(leaves: Iterable[StaleLeaf]) -> str:
    return ", ".join(f"{s.alloc_id[:8]} ({s.consumed:.0%} of serial {s.serial})" for s in leaves)


def decide(stale: list[StaleLeaf], last: Record | None, now: datetime, policy: Policy) -> Decision:
    """The next rung of the ladder for this job."""
    if not stale:
        return Healthy()
    age = (now - last.at).total_seconds() if last is not None else float("inf")
    if last is not None and last.kind == REISSUE:
        same = tuple(s for s in stale if s.serial in set(last.serials.values()))
        if age < policy.reissue_grace:
            return Wait(policy.reissue_grace - age, "a re-issue is rolling out")
        if same:
            return GiveUp(
                f"re-issue {last.nonce} did not replace {_describe(same)} within "
                f"{policy.reissue_grace:g}s; look at the job's deployment",
                policy.reissue_grace,
            )
    if last is not None and last.kind == RESTART:
        if age < policy.restart_grace and set(last.allocs) & {s.alloc_id for s in stale}:
            return Wait(policy.restart_grace - age, "restarted sidecars are coming back")
        unhelped = tuple(s for s in stale if last.serials.get(s.alloc_id) == s.serial)
        if unhelped:
            return Reissue(
                unhelped,
                f"restart did not replace {_describe(unhelped)} within {policy.restart_grace:g}s",
            )
    return Restart(
        tuple(stale),
        f"leaf past {policy.stale_fraction:.0%} of its life (renewal missed): {_describe(stale)}",
    )
