"""The pieces every status writer shares: the sidecar_injected gate, and restate — conditions
merged by type, phase and message derived from them, every other field carried over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crds_equivalent.status import ConditionStatus, ConditionType, MeshStatus, Phase
from reconcilers.conditions import condition, restate

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def injected(ok: bool | None = True, phase: Phase = Phase.INJECTED) -> MeshStatus:
    return MeshStatus(
        phase=phase,
        conditions=(condition(ConditionType.SIDECAR_INJECTED, ok, "Registered"),),
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (MeshStatus(), False),
        (injected(True), True),
        (injected(True, Phase.READY), True),
        (injected(False), False),
        (injected(None), False),
        (injected(True, Phase.REMOVED), False),  # the sidecar is gone, whatever was recorded
        (injected(True, Phase.INVALID), False),
    ],
)
def test_sidecar_injected(status: MeshStatus, expected: bool) -> None:
    assert status.sidecar_injected is expected


def test_restate_changes_only_conditions_phase_and_message() -> None:
    before = MeshStatus(
        phase=Phase.READY,
        verified_at=(NOW - timedelta(hours=1)).isoformat(),  # Ready once: a failure is Degraded
        observed_index=7,
        spec_hash="1:abc",
        conditions=(
            condition(ConditionType.SPEC_VALID, True, "Parsed").model_copy(
                update={"last_transition": (NOW - timedelta(days=1)).isoformat()}
            ),
            condition(ConditionType.SIDECAR_INJECTED, True, "Registered"),
            condition(ConditionType.ROLLED_OUT, True, "AllocationsRunning"),
        ),
        cert_not_after="2030-01-02T00:00:00+00:00",
        issuer="int",
        last_error="re-issue did not help",
        last_remediation='{"kind":"reissue"}',
    )
    after = restate(
        before, [condition(ConditionType.CONSUL_HEALTHY, False, "Critical", "check failing")], NOW
    )
    assert after.phase is Phase.DEGRADED
    assert after.message == "check failing"
    assert [c.type for c in after.conditions] == [
        ConditionType.SPEC_VALID,
        ConditionType.SIDECAR_INJECTED,
        ConditionType.ROLLED_OUT,
        ConditionType.CONSUL_HEALTHY,
    ]
    assert after.conditions[0] == before.conditions[0]  # transition time kept: status held
    healthy = after.condition(ConditionType.CONSUL_HEALTHY)
    assert healthy is not None and healthy.status is ConditionStatus.FALSE
    assert healthy.last_transition == NOW.isoformat()
    untouched = after.model_dump(exclude={"phase", "message", "conditions"})
    assert untouched == before.model_dump(exclude={"phase", "message", "conditions"})


def test_restate_of_nothing_starts_an_empty_record() -> None:
    first = restate(None, [condition(ConditionType.SPEC_VALID, False, "InvalidSpec", "bad")], NOW)
    assert (first.phase, first.message) == (Phase.INVALID, "bad")
    assert first.last_error == "" and first.observed_index == 0
