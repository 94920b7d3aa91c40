"""Rate limiters: per-key exponential backoff, the global token bucket, and their combination."""

from __future__ import annotations

import pytest

from controller.runtime.clock import FakeClock
from controller.runtime.ratelimit import ItemExponential, MaxOf, TokenBucket, default_limiter


def test_exponential_doubles_per_key_and_caps() -> None:
    lim: ItemExponential[str] = ItemExponential(base=0.5, cap=5.0)
    assert [lim.when("a") for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert lim.when("b") == 0.5  # another key has its own count
    assert lim.num_requeues("a") == 6
    assert lim.num_requeues("b") == 1


def test_exponential_forget_resets_backoff() -> None:
    lim: ItemExponential[str] = ItemExponential(base=1.0, cap=100.0)
    lim.when("a")
    lim.when("a")
    lim.forget("a")
    assert lim.num_requeues("a") == 0
    assert lim.when("a") == 1.0


def test_exponential_survives_huge_failure_counts() -> None:
    lim: ItemExponential[str] = ItemExponential(base=0.5, cap=300.0)
    delays = [lim.when("a") for _ in range(2000)]
    assert delays[-1] == 300.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 5.0)])
def test_exponential_rejects_bad_settings(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        ItemExponential(base=base, cap=cap)


def test_bucket_allows_burst_then_spaces_by_qps() -> None:
    clock = FakeClock()
    bucket: TokenBucket[str] = TokenBucket(qps=10.0, burst=3, clock=clock)
    delays = [bucket.when(f"k{i}") for i in range(6)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert delays[3:] == pytest.approx([0.1, 0.2, 0.3])


async def test_bucket_refills_with_time_up_to_burst() -> None:
    clock = FakeClock()
    bucket: TokenBucket[str] = TokenBucket(qps=2.0, burst=2, clock=clock)
    bucket.when("a")
    bucket.when("a")
    assert bucket.when("a") == pytest.approx(0.5)
    await clock.advance(100.0)  # long idle: refills, but never beyond burst
    assert [bucket.when("x") for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])


def test_max_of_takes_longest_delay_and_forgets_everywhere() -> None:
    clock = FakeClock()
    lim: MaxOf[str] = MaxOf(
        ItemExponential(base=1.0, cap=60.0), TokenBucket(qps=1.0, burst=1, clock=clock)
    )
    assert lim.when("a") == 1.0  # exponential 1.0 vs bucket 0.0
    assert lim.when("b") == pytest.approx(1.0)  # exponential 1.0 vs bucket 1.0
    assert lim.when("a") == pytest.approx(2.0)  # exponential 2.0 vs bucket 2.0
    assert lim.when("c") == pytest.approx(3.0)  # bucket debt dominates a fresh key
    assert lim.num_requeues("a") == 2
    lim.forget("a")
    assert lim.num_requeues("a") == 0


def test_default_limiter_uses_given_knobs() -> None:
    lim: MaxOf[str] = default_limiter(FakeClock(), base=2.0, cap=8.0, qps=1000.0, burst=1000)
    assert [lim.when("a") for _ in range(5)] == [2.0, 4.0, 8.0, 8.0, 8.0]
