"""Dropping the constraints Nomad implied because of the sidecar, and only those."""

from __future__ import annotations

import copy
from typing import Any

from reconcilers.injection.implied import drop_implied

VAULT = {"LTarget": "${attr.vault.version}", "RTarget": ">= 0.6.1", "Operand": "semver"}
SIGNALS = {"LTarget": "${attr.os.signals}", "RTarget": "SIGHUP,SIGQUIT", "Operand": "set_contains"}
IDENTITY = {"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.7.0-a", "Operand": "semver"}
LINUX = {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}


def dropped(current: Any, before: object) -> dict[str, Any]:
    group: dict[str, Any] = {"Name": "web", "Constraints": copy.deepcopy(current)}
    drop_implied(group, before)
    return group


def test_what_the_group_had_before_is_kept_as_a_multiset_and_the_rest_implied_goes() -> None:
    current = [VAULT, LINUX, VAULT, SIGNALS, IDENTITY]
    group = dropped(current, [LINUX, VAULT])
    assert group["Constraints"] == [VAULT, LINUX]


def test_constraints_not_implied_by_the_sidecar_always_stay() -> None:
    assert dropped([LINUX, VAULT], [LINUX])["Constraints"] == [LINUX]
    assert dropped([LINUX], [])["Constraints"] == [LINUX]


def test_a_group_that_had_no_constraints_gets_its_shape_back() -> None:
    assert "Constraints" not in dropped([VAULT, SIGNALS, IDENTITY], "absent")
    assert dropped([VAULT, SIGNALS], None)["Constraints"] is None
    assert dropped([VAULT], [])["Constraints"] == []


def test_a_record_without_the_field_drops_nothing() -> None:
    """``_uninject_group`` only calls drop_implied when the record has ``constraints``; with
    nothing to change the list object itself stays."""
    group: dict[str, Any] = {"Constraints": [LINUX]}
    before = group["Constraints"]
    drop_implied(group, [LINUX])
    assert group["Constraints"] is before


def test_entries_that_are_not_objects_are_kept_and_never_counted() -> None:
    assert dropped(["junk", VAULT], ["junk"])["Constraints"] == ["junk"]
    assert dropped([VAULT], ["junk", VAULT])["Constraints"] == [VAULT]
