"""Go's value syntaxes, because meta values are written by people who read Nomad's docs.

Nomad users write `true`, `1` or `T` and durations like `1h30m`; we accept exactly what Go's
strconv.ParseBool and time.ParseDuration accept, no more and no less, so a value that works in
one HashiCorp tool means the same thing here.
"""

import re

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

GO_BOOL_VALUES = "1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False"

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# `\d+(?:\.\d*)?`, not `\d+\.?\d*`: the latter splits a run of digits between its two
# quantifiers in every possible way before giving up, so a 200 kB "111…1" took minutes.
_COMPONENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
# Go's longest duration, "-2562047h47m16.854775807s", is 25 characters; allow generous
# spelling (leading zeros, several components) but never parse an unbounded value.
MAX_DURATION_TEXT = 256


def parse_go_bool(value: str) -> bool:
    """Parse like Go's strconv.ParseBool; raise ValueError on anything else."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid syntax for a boolean: {value!r}")


def parse_go_duration(value: str) -> float:
    """Parse like Go's time.ParseDuration and return seconds; raise ValueError otherwise."""
    if len(value) > MAX_DURATION_TEXT:
        raise ValueError(f"invalid duration: {len(value)} characters is too long")
    text = value
    sign = 1.0
    if text[:1] in ("-", "+"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f"invalid duration {value!r}")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _COMPONENT.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Format whole seconds the way Go's Duration.String() does (e.g. 5400 -> "1h30m0s")."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
