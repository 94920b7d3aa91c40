"""The certificate thresholds against both pkiCert renewal rules Nomad ships.

Each rule is written out from consul-template's ``dependency/vault_pki.go`` ``goodFor`` with Go's
integer arithmetic (v0.35–v0.37 for Nomad 1.7.0–1.8.1; v0.38 on for 1.8.2 and later), and
driven through every jitter draw: from a fresh leaf (OpenBao backdates NotBefore by 30 s) and
from a restart at any point of the leaf's life (the runner re-reads the file and starts over).
The controller must never call a leaf stale, nor the health verdict call it RenewalMissed,
before the client has renewed it under either rule.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator

import pytest

from reconcilers import renewal
from reconcilers.certs.remediation import Policy
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.health.verdicts import cert_verdict

JITTERS = range(-3, 3)  # r.Intn(6) - 3
HOUR = 3600
LIFETIMES = (1 * HOUR, 24 * HOUR, 72 * HOUR, 2160 * HOUR)  # mesh.tls.ttl: 1h .. the role's max


def go_div(a: int, b: int) -> int:
    """Go's integer division truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def good_for_v035(start: int, end: int, now: int, jitter: int) -> int | None:
    """v0.35.0–v0.37.x goodFor: seconds to sleep, or None for "renew now"."""
    if end <= now:
        return None
    lifespan, duration = end - start, end - now
    gooddur = go_div(duration * 9, 10)
    mindur = go_div(lifespan, 10)
    if gooddur <= mindur:
        return None
    if gooddur > 100:
        gooddur = gooddur + go_div(gooddur, 100) * jitter
    return gooddur


def good_for_v038(start: int, end: int, now: int, jitter: int) -> int | None:
    """v0.38 on: rotationTime = start + lifespan*0.90 + lifespan*(int64(jitter)/100.0)."""
    if end <= now:
        return None
    lifespan_ms = (end - start) * 1000
    rotation_ms = start * 1000 + int(
        lifespan_ms * renewal.RENEW_FRACTION + lifespan_ms * go_div(jitter, 100)
    )
    sleep_ms = rotation_ms - now * 1000
    return None if sleep_ms <= 0 else -(-sleep_ms // 1000)


RULES = {"v0.35-v0.37 (Nomad 1.7.0-1.8.1)": good_for_v035, "v0.38+ (Nomad 1.8.2+)": good_for_v038}


def renewed_at(rule: str, lifetime: int, since: int, draws: Iterator[int]) -> float:
    """The fraction of the leaf's life at which the runner re-issues it."""
    start, end, now = 0, lifetime, since
    while (sleep := RULES[rule](start, end, now, next(draws))) is not None:
        now += sleep
    return now / lifetime


def every_case() -> Iterator[tuple[str, int, int, tuple[int, ...]]]:
    for rule, lifetime in itertools.product(RULES, LIFETIMES):
        for since in (30, *(int(lifetime * f / 100) for f in range(0, 100, 7))):
            for draws in itertools.product(JITTERS, repeat=3):
                yield rule, lifetime, max(since, 30), draws


def latest_renewal(rule: str) -> float:
    return max(
        renewed_at(r, lifetime, since, itertools.chain(draws, itertools.repeat(2)))
        for r, lifetime, since, draws in every_case()
        if r == rule
    )


@pytest.mark.parametrize(
    ("rule", "earliest", "latest"),
    [
        ("v0.35-v0.37 (Nomad 1.7.0-1.8.1)", 0.89, 0.9909),
        ("v0.38+ (Nomad 1.8.2+)", 0.90, 0.9001),
    ],
)
def test_fresh_leaves_renew_where_the_source_says(
    rule: str, earliest: float, latest: float
) -> None:
    fractions = [
        renewed_at(rule, 72 * HOUR, 30, itertools.chain(draws, itertools.repeat(0)))
        for draws in itertools.product(JITTERS, repeat=2)
    ]
    assert min(fractions) >= earliest - 1e-4
    assert max(fractions) <= latest


def test_on_the_old_rule_a_third_of_fresh_leaves_renew_past_98_percent() -> None:
    """Why the former 92 % threshold restarted healthy sidecars on Nomad 1.7.0-1.8.1."""
    rule = "v0.35-v0.37 (Nomad 1.7.0-1.8.1)"
    late = {
        first
        for first in JITTERS
        for second in JITTERS
        if renewed_at(rule, 72 * HOUR, 30, iter((first, second, 0))) > 0.98
    }
    assert late == {-3, -2}
    assert renewed_at("v0.38+ (Nomad 1.8.2+)", 72 * HOUR, 30, iter((-3, -3))) == pytest.approx(
        0.9, abs=1e-6
    )


@pytest.mark.parametrize("rule", sorted(RULES))
def test_no_threshold_fires_before_either_rule_renews(rule: str) -> None:
    latest = latest_renewal(rule)
    assert latest <= renewal.OLD_RULE_LATEST + 1e-6  # the bound the docstring derives
    # The certs reconciler restarts only past STALE_FRACTION ...
    assert Policy().stale_fraction == renewal.STALE_FRACTION
    assert latest < Policy().stale_fraction
    # ... with room for the splay (5 s) and SIGHUP after a renewal even on a 1 h leaf ...
    assert (Policy().stale_fraction - latest) * 1 * HOUR > 10
    # ... and the health verdict calls a leaf RenewalMissed at the same point, not before.
    for func in (cert_verdict, HealthReconciler.__init__):
        default = inspect.signature(func).parameters["min_remaining_fraction"].default
        assert default == pytest.approx(1 - Policy().stale_fraction)
        assert 1 - latest > default
