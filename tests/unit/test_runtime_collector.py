"""The controller's collector setting: the young generation's threshold, and only it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from controller.runtime.collector import YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The process's thresholds before the test, put back after it."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults, whatever an earlier test left
    try:
        yield gc.get_threshold()
    finally:
        gc.set_threshold(*before)


def test_the_young_threshold_is_raised_and_the_older_ones_kept(
    thresholds: tuple[int, int, int],
) -> None:
    tune_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, thresholds[1], thresholds[2])
    assert gc.isenabled()


def test_a_given_young_threshold_is_used(thresholds: tuple[int, int, int]) -> None:
    tune_collector(12_345)
    assert gc.get_threshold() == (12_345, 10, 10)
