"""The bounded memory of recently touched keys that the cache keeps unpacked."""

from __future__ import annotations

import pytest

from controller.runtime.recent import Recent


def test_the_least_recently_touched_key_is_cooled_first() -> None:
    cooled: list[tuple[str, int]] = []
    recent: Recent[str, int] = Recent(2, lambda k, v: cooled.append((k, v)))
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.get("a") == 1  # now "b" is the oldest
    recent.put("c", 3)
    assert cooled == [("b", 2)]
    assert sorted(recent) == ["a", "c"] and len(recent) == 2


def test_a_popped_key_is_forgotten_without_cooling() -> None:
    cooled: list[str] = []
    recent: Recent[str, int] = Recent(2, lambda k, v: cooled.append(k))
    recent.put("a", 1)
    assert recent.pop("a") == 1 and recent.pop("a") is None
    assert "a" not in recent and recent.get("a") is None
    recent.put("b", 2)
    recent.flush()
    assert cooled == ["b"] and len(recent) == 0


def test_a_put_of_a_held_key_replaces_its_value_without_cooling() -> None:
    cooled: list[str] = []
    recent: Recent[str, int] = Recent(1, lambda k, v: cooled.append(k))
    recent.put("a", 1)
    recent.put("a", 2)
    assert recent.get("a") == 2 and cooled == []


def test_a_recent_of_no_keys_cools_each_value_as_it_is_put() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        Recent(-1, lambda k, v: None)
    cooled: list[tuple[str, int]] = []
    none: Recent[str, int] = Recent(0, lambda k, v: cooled.append((k, v)))
    none.put("a", 1)
    assert len(none) == 0 and none.get("a") is None and cooled == [("a", 1)]
