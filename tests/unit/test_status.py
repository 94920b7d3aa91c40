"""MeshStatus round-trips through Variable Items and knows when it changed."""

import pytest
from pydantic import ValidationError

from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase


def sample() -> MeshStatus:
    return MeshStatus(
        phase=Phase.READY,
        observed_index=42,
        spec_hash="1:0123456789abcdef",
        conditions=(
            Condition(
                type=ConditionType.SPEC_VALID,
                status=ConditionStatus.TRUE,
                reason="Parsed",
                last_transition="2026-11-25T10:00:00Z",
            ),
            Condition(
                type=ConditionType.CONSUL_HEALTHY,
                status=ConditionStatus.UNKNOWN,
                reason="ConsulUnreachable",
                message="connection refused",
            ),
        ),
        message="ok",
        updated_at="2026-11-25T10:00:01Z",
        cert_not_after="2026-11-28T10:00:00Z",
    )


def test_items_are_all_strings_and_round_trip() -> None:
    items = sample().to_items()
    assert all(isinstance(v, str) for v in items.values())
    assert items["phase"] == "Ready"
    assert items["observed_index"] == "42"
    assert "issuer" not in items  # empty optional items are not written
    assert MeshStatus.from_items(items) == sample()


def test_condition_lookup() -> None:
    cond = sample().condition(ConditionType.CONSUL_HEALTHY)
    assert cond is not None and cond.status is ConditionStatus.UNKNOWN
    assert sample().condition(ConditionType.CERT_VALID) is None


def test_same_content_ignores_timestamps_only() -> None:
    a = sample()
    later = a.model_copy(update={"updated_at": "2026-11-25T11:00:00Z"})
    assert a.same_content(later)
    moved = a.model_copy(update={"observed_index": 43})
    assert not a.same_content(moved)
    retimed = a.model_copy(
        update={
            "conditions": tuple(c.model_copy(update={"last_transition": "x"}) for c in a.conditions)
        }
    )
    assert a.same_content(retimed)


def test_items_spell_conditions_as_their_json_dump() -> None:
    """What Nomad stores of a condition is its JSON dump, field for field, in field order."""
    conditions = sample().to_items()["conditions"]
    assert conditions == (
        '[{"type":"SpecValid","status":"True","reason":"Parsed","message":"",'
        '"last_transition":"2026-11-25T10:00:00Z"},'
        '{"type":"ConsulHealthy","status":"Unknown","reason":"ConsulUnreachable",'
        '"message":"connection refused","last_transition":""}]'
    )


@pytest.mark.parametrize(
    "change",
    [
        {"phase": Phase.DEGRADED},
        {"message": "other"},
        {"cert_not_after": ""},
        {"warnings": ("a name no job fronts",)},
        {"conditions": sample().conditions[:1]},
    ],
)
def test_any_other_field_is_content(change: dict[str, object]) -> None:
    assert not sample().same_content(sample().model_copy(update=change))


@pytest.mark.parametrize("field", ["status", "reason", "message"])
def test_a_condition_is_content_but_its_transition_time(field: str) -> None:
    a = sample()
    value = ConditionStatus.FALSE if field == "status" else "changed"
    first = a.conditions[1].model_copy(update={field: value})
    changed = a.model_copy(update={"conditions": (a.conditions[0], first)})
    assert not a.same_content(changed)
    assert not changed.same_content(a)


def test_corrupt_records_are_refused() -> None:
    with pytest.raises(ValidationError):
        MeshStatus.from_items({"phase": "Sleeping"})
