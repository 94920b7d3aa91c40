"""Go value syntaxes: exactly what strconv.ParseBool and time.ParseDuration accept."""

import pytest

from crds_equivalent.goparse import format_go_duration, parse_go_bool, parse_go_duration


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_true_spellings(text: str) -> None:
    assert parse_go_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_false_spellings(text: str) -> None:
    assert parse_go_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "on", "TrUe", " true", "", "2"])
def test_other_bool_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid syntax"):
        parse_go_bool(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("72h", 259200.0),
        ("90m", 5400.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("0", 0.0),
        ("300ms", 0.3),
        ("2h45m30s", 9930.0),
        ("-1m", -60.0),
        ("1µs", 1e-6),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "72", "h", "1d", "1h 30m", "1H", "+", "1.h2"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


def test_format_matches_go_duration_string() -> None:
    assert format_go_duration(15) == "15s"
    assert format_go_duration(60) == "1m0s"
    assert format_go_duration(5400) == "1h30m0s"


# Found by `make chaos`'s fuzz run: `mesh.tls.ttl = "1" * 200_000` took minutes (the digits were
# split between two quantifiers in every possible way), blocking the controller's event loop.
@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", ["1" * 200_000, "1" * 255, "1" * 250 + "x", "1.1" * 80])
def test_long_digit_runs_are_refused_without_backtracking(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


def test_long_but_valid_spellings_up_to_the_limit_still_parse() -> None:
    assert parse_go_duration("0" * 250 + "1h") == 3600.0
    assert parse_go_duration("1h" * 128) == 128 * 3600.0
