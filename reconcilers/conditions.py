"""PURE: build status records from checked facts, keeping transition times honest.

A condition's `last_transition` moves only when its status changes; otherwise an operator could
not tell "failing for three days" from "failing since the last reconcile". The phase is derived
from the conditions, never stored independently of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase

# The order conditions are reported in, and in which the first failing one is the message.
ORDER = (
    ConditionType.SPEC_VALID,
    ConditionType.SIDECAR_INJECTED,
    ConditionType.ROLLED_OUT,
    ConditionType.CERT_VALID,
    ConditionType.CONSUL_HEALTHY,
    ConditionType.PLAINTEXT_RETIRED,
    ConditionType.UPSTREAMS_HEALTHY,
)

# The reason the health reconciler gives ConsulHealthy, CertValid and PlaintextRetired of a PURE
# CLIENT (a meshed group that fronts nothing and only calls upstreams): they hold vacuously (no
# registration to check, no chain served, no plaintext to retire), and this reason tells
# ``judge`` that the job's one health fact is ``UpstreamsHealthy``.
PURE_CLIENT = "PureClient"


@lru_cache(maxsize=4096)
def condition(kind: ConditionType, ok: bool | None, reason: str, message: str = "") -> Condition:
    """A condition from a tri-state fact (None = could not tell). Shared: a Condition is frozen,
    and the same few facts recur across thousands of jobs ("Registered", "1/2 healthy"). Each
    pending status change keeps its conditions until written, and under load a record is held
    until its rollout ends, so at a 10k cold start a private copy per change (~550 bytes each)
    was tens of megabytes."""
    status = (
        ConditionStatus.UNKNOWN
        if ok is None
        else ConditionStatus.TRUE
        if ok
        else ConditionStatus.FALSE
    )
    return Condition(type=kind, status=status, reason=reason, message=message)


def merge(
    previous: MeshStatus | None, updates: Iterable[Condition], now: datetime
) -> tuple[Condition, ...]:
    """Previous conditions overlaid by `updates`, transition times kept where status held."""
    by_type = {c.type: c for c in previous.conditions} if previous else {}
    for new in updates:
        old = by_type.get(new.type)
        if old is not None and old.status == new.status:
            if _same_fact(old, new):
                continue  # the stored condition already says it, stamp and all (no copy made)
            stamp = old.last_transition
        else:
            stamp = now.isoformat()
        by_type[new.type] = new.model_copy(update={"last_transition": stamp})
    return tuple(by_type[t] for t in ORDER if t in by_type)


def _same_fact(old: Condition, new: Condition) -> bool:
    """Every field but the transition time is equal."""
    held = old.__dict__
    return all(k == "last_transition" or held[k] == v for k, v in new.__dict__.items())


def first_failing(conditions: Iterable[Condition]) -> Condition | None:
    """The first condition, in report order, that is not True."""
    return next((c for c in conditions if c.status != ConditionStatus.TRUE), None)


def restate(
    previous: MeshStatus | None,
    updates: Iterable[Condition],
    now: datetime,
    *,
    spec_hash: str | None = None,
) -> MeshStatus:
    """``previous`` (or an empty record) with ``updates`` merged by type, and the phase, message
    and ``verified_at`` the merged conditions imply. The one place a phase is derived: whichever
    reconciler writes, the phase follows from every reconciler's conditions, and every field the
    writer does not own is carried over unchanged.

    ``spec_hash`` is what the mesh reconciler is about to record: when it differs from the
    stored one, the job is a new version nobody has verified yet, so ``verified_at`` is cleared
    before judging (a failing check of the new version is then warming up, not Degraded). The
    health reconciler passes nothing: it never changes which version is meant."""
    base = previous if previous is not None else MeshStatus()
    conditions = merge(base, updates, now)
    verified_at = base.verified_at
    if spec_hash is not None and spec_hash != base.spec_hash:
        verified_at = ""
    phase, message = judge(conditions, verified=bool(verified_at), previous=base.phase)
    if phase is Phase.READY and not verified_at:
        verified_at = now.isoformat()
    return base.model_copy(
        update={
            "conditions": conditions,
            "phase": phase,
            "message": message,
            "verified_at": verified_at,
        }
    )


# RolledOut reasons that mean Nomad gave up on the controller's version (it will not resume a
# failed deployment by itself): the job is Degraded, not still Injected and on its way.
FAILED_ROLLOUT_REASONS = frozenset({"DeploymentFailed", "Reverted"})

# What a job waits for once it runs, in the order it gets there: Consul's checks pass on the TLS
# port (they start critical), then a TLS probe verifies the chain, then plaintext is retired.
HEALTH_ORDER = (
    ConditionType.CONSUL_HEALTHY,
    ConditionType.CERT_VALID,
    ConditionType.PLAINTEXT_RETIRED,
    ConditionType.UPSTREAMS_HEALTHY,
)
WAITING_FOR = {
    ConditionType.CONSUL_HEALTHY: "waiting for Consul checks on the TLS port",
    ConditionType.CERT_VALID: "waiting for a TLS probe to verify the served chain",
    ConditionType.PLAINTEXT_RETIRED: "waiting for the plaintext registrations to be retired",
    ConditionType.UPSTREAMS_HEALTHY: "waiting for a healthy instance of every upstream",
}


def is_pure_client(conditions: Iterable[Condition]) -> bool:
    """The health reconciler judged the job a pure client (see :data:`PURE_CLIENT`)."""
    return any(
        c.type == ConditionType.CONSUL_HEALTHY and c.reason == PURE_CLIENT for c in conditions
    )


def _required(by_type: dict[ConditionType, Condition]) -> list[ConditionType]:
    """The health facts Ready needs. ``UpstreamsHealthy`` is written with the others on every
    health pass, so a record without it was written before it existed (or the job has no
    upstream): required only of a pure client, whose one fact it is."""
    pure = is_pure_client(by_type.values())
    return [
        t for t in HEALTH_ORDER if t is not ConditionType.UPSTREAMS_HEALTHY or t in by_type or pure
    ]


def judge(
    conditions: tuple[Condition, ...], *, verified: bool, previous: Phase | None = None
) -> tuple[Phase, str]:
    """The phase and its message. Ready needs every fact checked and True: injected, rolled out
    (Nomad's verdict on the deployment, see ``reconcilers.mesh.rollout``), Consul passing on the
    TLS port, the chain verified, plaintext retired. A health fact that is missing, Unknown or
    False keeps an unverified job Injected, with what it waits for: Consul starts every check
    critical, so a False check of a job that was never Ready is warm-up, not a fault. Degraded
    needs a fault: a health fact False after the job was verified Ready (``verified``), or a
    deployment Nomad failed or reverted. A verified job whose health fact turns Unknown (a
    catalog or Vault did not answer) stays Ready with what cannot be told: a fact nobody could
    check is no evidence against the job, and the phase only moves on evidence.

    ``UpstreamsHealthy`` is one more health fact, under the same rules: an upstream that is
    empty or not meshed keeps a fresh job Injected and makes a verified one Degraded (its calls
    fail). A PURE CLIENT's other three facts are vacuous (reason ``PureClient``), so its phase
    follows its rollout and its upstreams alone; for it, a missing ``UpstreamsHealthy`` is
    waited for like any missing fact."""
    by_type = {c.type: c for c in conditions}
    failing = first_failing(conditions)
    spec = by_type.get(ConditionType.SPEC_VALID)
    if spec is not None and spec.status == ConditionStatus.FALSE:
        return Phase.INVALID, spec.message
    rolled = by_type.get(ConditionType.ROLLED_OUT)
    if (
        rolled is not None
        and rolled.status == ConditionStatus.FALSE
        and rolled.reason in FAILED_ROLLOUT_REASONS
    ):
        return Phase.DEGRADED, failing.message if failing else rolled.message
    injected = by_type.get(ConditionType.SIDECAR_INJECTED)
    if injected is None or injected.status != ConditionStatus.TRUE:
        if failing is not None and failing.message:
            return Phase.PENDING, failing.message
        return Phase.PENDING, "waiting for the sidecar to be injected"
    if rolled is None or rolled.status != ConditionStatus.TRUE:
        if failing is not None and failing.message:
            return Phase.INJECTED, failing.message
        return Phase.INJECTED, "waiting for the injected version to roll out"
    broken = [
        by_type[t]
        for t in ORDER
        if t in WAITING_FOR and t in by_type and by_type[t].status == ConditionStatus.FALSE
    ]
    if broken and verified:
        return Phase.DEGRADED, broken[0].message
    pending = next(
        (
            (t, by_type.get(t))
            for t in _required(by_type)
            if t not in by_type or by_type[t].status != ConditionStatus.TRUE
        ),
        None,
    )
    if pending is None:
        return Phase.READY, ""
    kind, fact = pending
    detail = f": {fact.message}" if fact is not None and fact.message else ""
    if verified and fact is not None and fact.status == ConditionStatus.UNKNOWN:
        # Verified, and now a catalog or Vault does not answer: nothing is known to have changed,
        # so the job keeps its phase — a Consul blip must not move every job back to Injected,
        # nor a Degraded one to Ready.
        if previous is Phase.DEGRADED:
            return Phase.DEGRADED, f"degraded when last seen; cannot tell now{detail}"
        return Phase.READY, f"verified earlier; cannot tell now{detail}"
    return Phase.INJECTED, WAITING_FOR[kind] + detail


def phase_of(conditions: tuple[Condition, ...], *, verified: bool = False) -> Phase:
    """The phase alone (see :func:`judge`)."""
    return judge(conditions, verified=verified)[0]
