"""The pure side of the controller's Vault token: lookup-self read once, for the keeper (when to
renew, the expiry gauge) and for ``controllerctl check`` (when it lapses)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from controller.config import Settings
from controller.ctl.checks import Mark
from controller.ctl.token_verdict import controller_token_verdict, token_verdict
from controller.vault.token_facts import (
    RETRY_CAP,
    TokenFacts,
    expiry_gauge,
    parse_time,
    renew_delay,
    retry_delay,
    watch_delay,
)
from controller.vault.token_source import EnvToken, FileToken, token_source

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC).timestamp()
DAY = 86400


def lookup(**data: Any) -> TokenFacts:
    return TokenFacts.from_lookup({"data": data})


def at(seconds: float) -> str:
    """An expire_time as Vault writes it: RFC 3339, nanoseconds, Z."""
    return datetime.fromtimestamp(NOW + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


ROOT = lookup(ttl=0, expire_time=None, policies=["root"], renewable=False)
PERIODIC = lookup(ttl=30, expire_time=at(30), renewable=True, period=30, creation_ttl=30)
CAPPED = lookup(
    ttl=600,
    expire_time=at(600),
    renewable=True,
    creation_ttl=600,
    explicit_max_ttl=2 * 3600,
    creation_time=int(NOW - 3600),
)
SHORT_FIXED = lookup(ttl=3600, expire_time=at(3600), renewable=False)
LONG_FIXED = lookup(ttl=3 * DAY, expire_time=at(3 * DAY), renewable=False)


def test_vault_times_with_nanoseconds_parse_and_nonsense_does_not() -> None:
    assert parse_time(at(30)) == pytest.approx(NOW + 30, abs=1)
    assert parse_time("2026-12-02T09:00:30+00:00") == NOW + 30
    assert parse_time(None) is None and parse_time("soon") is None and parse_time("") is None


@pytest.mark.parametrize(
    ("facts", "gauge", "lapse"),
    [
        (ROOT, 0.0, None),  # a root token: no expiry, exported as 0
        (PERIODIC, NOW + 30, None),  # renewable forever
        (CAPPED, NOW + 600, NOW + 3600),  # renewable until creation + explicit max
        (SHORT_FIXED, NOW + 3600, NOW + 3600),  # cannot be renewed: lapses at expiry
    ],
)
def test_expiry_and_lapse(facts: TokenFacts, gauge: float, lapse: float | None) -> None:
    assert expiry_gauge(facts, NOW) == pytest.approx(gauge, abs=1)
    assert facts.lapse(NOW) == (None if lapse is None else pytest.approx(lapse, abs=1))


def test_only_the_ttl_given_means_now_plus_ttl() -> None:
    assert expiry_gauge(lookup(ttl=90, renewable=True), NOW) == NOW + 90


def test_periodic_tokens_ask_no_increment_others_their_own_ttl() -> None:
    assert PERIODIC.increment() is None
    assert CAPPED.increment() == "600s"
    assert ROOT.increment() is None


def test_renewal_comes_at_half_the_ttl_and_watching_is_bounded() -> None:
    assert renew_delay(PERIODIC) == 15
    assert renew_delay(lookup(ttl=1, renewable=True)) == 1  # never a busy loop
    assert watch_delay(ROOT, from_file=False) == 300
    assert watch_delay(ROOT, from_file=True) == 30
    assert watch_delay(SHORT_FIXED, from_file=True) == 30
    assert watch_delay(PERIODIC, from_file=True) == 15


def test_retries_double_to_a_cap_and_stay_within_a_quarter_of_the_ttl() -> None:
    assert [retry_delay(n, None) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert retry_delay(20, None) == RETRY_CAP
    assert retry_delay(20, PERIODIC) == 7.5  # a 30 s token gets several tries


@pytest.mark.parametrize(
    ("facts", "mark", "says"),
    [
        (ROOT, Mark.OK, "no expiry"),
        (PERIODIC, Mark.OK, "period 30s"),  # renewed by us or Nomad: not "lapsing in 30 s"
        (LONG_FIXED, Mark.OK, "expires"),
        (SHORT_FIXED, Mark.WARN, "cannot be renewed"),
        (CAPPED, Mark.WARN, "explicit max TTL"),
        (lookup(ttl=0, expire_time=at(-5), renewable=False), Mark.FAIL, "EXPIRED"),
    ],
)
def test_check_warns_within_a_day_of_lapsing_and_fails_when_expired(
    facts: TokenFacts, mark: Mark, says: str
) -> None:
    result = token_verdict("Vault", facts, NOW)
    assert result.mark is mark and says in result.detail
    assert mark is Mark.OK or "periodic token" in result.hint


def test_the_file_wins_over_the_env_and_only_the_env_token_is_ours_to_renew(
    tmp_path: Path,
) -> None:
    file = tmp_path / "vault_token"
    file.write_text("hvs.from-the-file\n")
    both = Settings.from_env({"VAULT_TOKEN": "hvs.from-env", "VAULT_TOKEN_FILE": str(file)})
    source = token_source(both.vault)
    assert isinstance(source, FileToken) and not source.renews_itself
    assert source.current() == "hvs.from-the-file"
    env_only = token_source(Settings.from_env({"VAULT_TOKEN": "hvs.from-env"}).vault)
    assert isinstance(env_only, EnvToken) and env_only.renews_itself
    assert "from-env" not in repr(env_only) and "from-the-file" not in repr(source)


@pytest.mark.parametrize(
    ("expiry", "error", "mark"),
    [
        (0.0, "", Mark.OK),  # the controller runs on a token without TTL
        (NOW + 20, "", Mark.OK),  # a 30 s periodic token the controller keeps renewing
        (NOW - 5, "", Mark.FAIL),  # its renewals failed until it expired
        (None, "", Mark.WARN),  # never looked up successfully
        (None, "http://c1:9464/metrics: ClientConnectorError", None),  # no line: unreachable
    ],
)
def test_the_controllers_own_token_from_its_metrics(
    expiry: float | None, error: str, mark: Mark | None
) -> None:
    result = controller_token_verdict("Controller", expiry, error, NOW)
    assert (result.mark if result is not None else None) is mark
    if result is not None and mark is not Mark.OK:
        assert "vault token upkeep failed" in result.hint


def test_a_token_file_logs_its_changes_but_never_its_first_read_or_the_token(
    tmp_path: Path,
) -> None:
    file = tmp_path / "vault_token"
    source = FileToken(file)
    with capture_logs() as logs:
        assert source.current() == ""  # missing at start: controllerctl prints nothing
        file.write_text("s.first-token-value-0123456789\n")
        assert source.current() == "s.first-token-value-0123456789"
        assert logs == []
        file.write_text("s.second-token-value-0123456789\n")
        assert source.current() == "s.second-token-value-0123456789"
        file.unlink()
        assert source.current() == "s.second-token-value-0123456789"  # the last one stays
    assert [e["event"] for e in logs] == [
        "vault token file changed; using the new token",
        "vault token file unreadable; keeping the last token",
    ]
    assert "token-value" not in str(logs)
