"""Standing: news when a condition starts or changes its reason, bounded, never silent."""

from __future__ import annotations

import pytest

from controller.runtime.standing import Standing


def test_news_on_start_and_on_a_new_reason_not_on_a_repeat() -> None:
    s: Standing[str] = Standing()
    assert [s.news("a", "Down"), s.news("a", "Down"), s.news("a", "Denied")] == [True, False, True]
    assert s.news("b", "Down")  # per key
    assert len(s) == 2


def test_an_ended_condition_is_news_again_and_its_key_is_dropped() -> None:
    s: Standing[str] = Standing()
    s.news("a", "Down")
    s.end("a")
    s.end("never-seen")
    assert len(s) == 0
    assert s.news("a", "Down")


def test_past_the_limit_a_new_key_is_always_news_and_not_kept() -> None:
    s: Standing[str] = Standing(limit=1)
    s.news("a", "Down")
    assert [s.news("b", "Down"), s.news("b", "Down")] == [True, True]
    assert len(s) == 1
    assert not s.news("a", "Down")  # the kept key still answers


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        Standing(limit=-1)
