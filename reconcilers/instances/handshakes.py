"""Which instances a health re-check must handshake again, and which verified handshakes hold.

A health pass runs every ``MESH_HEALTH_INTERVAL`` (30 s) for every meshed job, and a verified
TLS handshake costs the controller ~1.1 ms of CPU, so handshaking every instance on every pass
is the controller's largest standing cost on a large cluster (10,000 jobs of two instances:
~0.7 of a core). Most of those handshakes re-read a leaf nothing could have changed. The
catalog is read afresh on every pass either way, so an instance that stops answering still
shows at once (its check fails, or it leaves the catalog).

A verified handshake is reused while none of what could change the served leaf has:

- the same allocation, registration and address, and its checks pass now, one of them an http
  check of the registration itself (the injection turns a user's http check on a fronted port
  into https): Consul's agent then completes a TLS session with the sidecar every check
  interval, so a sidecar that stops serving fails a check and is handshaken on the next pass.
  A registration with only tcp checks (which a frozen process still passes, from the kernel's
  backlog) or none is handshaken on every pass, as is one whose checks fail, so one that
  recovers is judged by a handshake made since it failed;
- the same job version (``JobModifyIndex``: an in-place update, a re-issue nonce) and the same
  mesh root (a rotated root re-judges every leaf);
- the leaf was signed by the intermediate that issues now (its Authority Key Identifier is the
  default issuer's key): while an intermediate rotation moves the mesh to a new issuer, and
  restarts sidecars inside their allocations to get there, every leaf still on the old one is
  handshaken on every pass, so the new leaf shows in the status one interval after it is
  served;
- the leaf is not yet in its renewal window (``RENEWAL_WATCH`` of its life: consul-template's
  earliest renewing wake is at 87.3 %, ``reconcilers.renewal``), so a renewed leaf, or one that
  missed its renewal, is seen within one interval of it;
- and it is younger than ``max_age``, which bounds everything else (a file swapped by hand).

Only verified handshakes are kept: a failure is handshaken again on every pass. What a reused
handshake reports is its own leaf, with the time left recomputed now.

The health and certs reconcilers share one memory, so a job's instances are handshaken for
both at most once per ``max_age``. That is safe for remediation: it acts on a leaf past
``STALE_FRACTION`` (99.5 %) of its life, and a handshake is reused only while its leaf is short
of 85 %, so a leaf that could need remediation is always seen fresh. The intermediate rotation
makes its own handshakes: it asks which issuer signed what is served, which a leaf renewed
early inside its allocation could have changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from controller.runtime.clock import Clock
from controller.tlsprobe import ProbeResult, ProbeTarget
from crds_equivalent.jobkey import JobKey
from reconcilers.instances.matching import Instance
from reconcilers.ports import TlsProbe

RENEWAL_WATCH: Final = 0.85  # of a leaf's life: from here on it is handshaken on every pass

_Identity = tuple[str, str, ProbeTarget]  # allocation, Consul service ID, where and what name


@dataclass(frozen=True, slots=True)
class Handshakes:
    """One pass's results, one per instance in order, and how many were made or reused."""

    results: list[ProbeResult]
    made: int
    reused: int


@dataclass(frozen=True, slots=True)
class _Seen:
    at: float  # monotonic time of the handshake itself, not of a reuse
    result: ProbeResult


@dataclass(slots=True)
class _JobHandshakes:
    version: int
    anchors: str
    seen: dict[_Identity, _Seen]


def _checked(instance: Instance) -> bool:
    """Its checks pass, and one is an http check of this registration (Consul's ``Type``)."""
    entry = instance.entry
    return entry.passing and any(
        c.get("Type") == "http" and c.get("ServiceID") == entry.service_id for c in entry.checks
    )


class HandshakeMemory:
    """The verified handshakes of each job's instances, and the rule for reusing them."""

    def __init__(self, probe: TlsProbe, clock: Clock, *, max_age: float) -> None:
        if max_age < 0:
            raise ValueError("max_age must be >= 0 (0: handshake on every pass)")
        self.probe = probe
        self.clock = clock
        self.max_age = max_age
        self._jobs: dict[JobKey, _JobHandshakes] = {}

    async def results(
        self,
        key: JobKey,
        version: int,
        instances: Sequence[Instance],
        anchors_pem: str,
        *,
        issuer_key_id: str,
    ) -> Handshakes:
        """A result per instance: reused where the rule allows, handshaken otherwise.
        ``issuer_key_id``: the default issuer's key (hex); "" when unknown, which reuses
        nothing."""
        kept = self._jobs.get(key)
        if kept is not None and (kept.version != version or kept.anchors != anchors_pem):
            kept = None
        now_m, now = self.clock.monotonic(), self.clock.now()
        idents = [(i.alloc_id, i.entry.service_id, i.target) for i in instances]
        reused: dict[_Identity, ProbeResult] = {}
        for ident, instance in zip(idents, instances, strict=True):
            seen = kept.seen.get(ident) if kept is not None and _checked(instance) else None
            leaf = seen.result.leaf if seen is not None else None
            if (
                seen is not None
                and leaf is not None
                and issuer_key_id
                and leaf.authority_key_id == issuer_key_id
                and self._holds(seen, now_m, now)
            ):
                reused[ident] = replace(seen.result, remaining_seconds=leaf.remaining_seconds(now))
        missing = [i for i in dict.fromkeys(idents) if i not in reused]
        fresh: dict[_Identity, ProbeResult] = {}
        if missing:
            answers = await self.probe.probe_many([m[2] for m in missing], anchors_pem)
            fresh = dict(zip(missing, answers, strict=True))
        held = {i: kept.seen[i] for i in reused} if kept is not None else {}
        self._keep(key, version, anchors_pem, held, fresh, at=now_m)
        results = [reused[i] if i in reused else fresh[i] for i in idents]
        return Handshakes(results, made=len(missing), reused=len(idents) - len(missing))

    def forget(self, key: JobKey) -> None:
        self._jobs.pop(key, None)

    def __len__(self) -> int:
        """How many jobs have a kept handshake."""
        return len(self._jobs)

    def _keep(
        self,
        key: JobKey,
        version: int,
        anchors_pem: str,
        held: dict[_Identity, _Seen],
        fresh: dict[_Identity, ProbeResult],
        *,
        at: float,
    ) -> None:
        """What holds after this pass: the handshakes reused (still timed from when they were
        made) and the fresh verified ones, timed from before they started. An instance this
        pass did not see is dropped."""
        seen = {**held, **{i: _Seen(at, r) for i, r in fresh.items() if r.ok and r.leaf}}
        if self.max_age <= 0 or not seen:
            self._jobs.pop(key, None)
        else:
            self._jobs[key] = _JobHandshakes(version, anchors_pem, seen)

    def _holds(self, seen: _Seen, now_m: float, now: datetime) -> bool:
        leaf = seen.result.leaf
        if leaf is None or now_m - seen.at >= self.max_age:
            return False
        return now < leaf.not_before + timedelta(seconds=leaf.lifetime_seconds * RENEWAL_WATCH)
