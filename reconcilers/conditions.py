"""PURE: build status records from checked facts, keeping transition times honest.

A condition's `last_transition` moves only when its status changes; otherwise an operator could
not tell "failing for three days" from "failing since the last reconcile". The phase is derived
from the conditions, never stored independently of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase

# The order conditions are reported in, and in which the first failing one is the message.
ORDER = (
    ConditionType.SPEC_VALID,
    ConditionType.SIDECAR_INJECTED,
    ConditionType.ROLLED_OUT,
    ConditionType.CERT_VALID,
    ConditionType.CONSUL_HEALTHY,
    ConditionType.PLAINTEXT_RETIRED,
)


def condition(kind: ConditionType, ok: bool | None, reason: str, message: str = "") -> Condition:
    """A condition from a tri-state fact (None = could not tell)."""
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
            stamp = old.last_transition
        else:
            stamp = now.isoformat()
        by_type[new.type] = new.model_copy(update={"last_transition": stamp})
    return tuple(by_type[t] for t in ORDER if t in by_type)


def first_failing(conditions: Iterable[Condition]) -> Condition | None:
    """The first condition, in report order, that is not True."""
    return next((c for c in conditions if c.status != ConditionStatus.TRUE), None)


def restate(previous: MeshStatus | None, updates: Iterable[Condition], now: datetime) -> MeshStatus:
    """``previous`` (or an empty record) with ``updates`` merged by type, and the phase and
    message the merged conditions imply. The one place a phase is derived: whichever reconciler
    writes, the phase follows from every reconciler's conditions, and every field the writer
    does not own is carried over unchanged."""
    base = previous if previous is not None else MeshStatus()
    conditions = merge(base, updates, now)
    failing = first_failing(conditions)
    return base.model_copy(
        update={
            "conditions": conditions,
            "phase": phase_of(conditions),
            "message": failing.message if failing else "",
        }
    )


# RolledOut reasons that mean Nomad gave up on the controller's version (it will not resume a
# failed deployment by itself): the job is Degraded, not still Injected and on its way.
FAILED_ROLLOUT_REASONS = frozenset({"DeploymentFailed", "Reverted"})


def phase_of(conditions: tuple[Condition, ...]) -> Phase:
    """Ready when everything checked holds; Degraded when a health fact fails after rollout, or
    when Nomad failed (or reverted) the deployment of the injected version."""
    by_type = {c.type: c.status for c in conditions}
    if by_type.get(ConditionType.SPEC_VALID) == ConditionStatus.FALSE:
        return Phase.INVALID
    rolled = next((c for c in conditions if c.type == ConditionType.ROLLED_OUT), None)
    if (
        rolled is not None
        and rolled.status == ConditionStatus.FALSE
        and rolled.reason in FAILED_ROLLOUT_REASONS
    ):
        return Phase.DEGRADED
    if by_type.get(ConditionType.SIDECAR_INJECTED) != ConditionStatus.TRUE:
        return Phase.PENDING
    if by_type.get(ConditionType.ROLLED_OUT) != ConditionStatus.TRUE:
        return Phase.INJECTED
    health = [
        by_type[t]
        for t in (
            ConditionType.CERT_VALID,
            ConditionType.CONSUL_HEALTHY,
            ConditionType.PLAINTEXT_RETIRED,
        )
        if t in by_type
    ]
    if any(s == ConditionStatus.FALSE for s in health):
        return Phase.DEGRADED
    if any(s == ConditionStatus.UNKNOWN for s in health):
        return Phase.INJECTED  # cannot tell: neither claim Ready nor blame the service
    return Phase.READY
