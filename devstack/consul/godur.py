"""Go `time.Duration` on the wire, in integer nanoseconds.

Consul accepts check intervals as Go duration strings or as numbers of nanoseconds, and prints
them back with `Duration.String()` ("10s", "1m0s", "1.5s", "500ms"). Nomad keeps intervals in
nanoseconds and sends `Duration.String()` to Consul. Both twins' callers need the exact text, so
the conversion lives here, once, with Go's grammar and Go's formatting.
"""

from __future__ import annotations

import re

NS = 1
US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {"ns": NS, "us": US, "µs": US, "μs": US, "ms": MS, "s": SECOND, "m": MINUTE, "h": HOUR}
_TERM = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A value that Go's time.ParseDuration would reject; str() is Go's message."""


def parse(text: str) -> int:
    """Go's time.ParseDuration: "1h2m3.5s" -> nanoseconds. Raises DurationError."""
    orig = text
    sign = 1
    if text and text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise DurationError(f'time: invalid duration "{orig}"')
    total = 0
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or (m.group(1) == "" and not m.group(2)):
            if m is None and re.match(r"\d*(?:\.\d*)?$", text[pos:]):
                raise DurationError(f'time: missing unit in duration "{orig}"')
            raise DurationError(f'time: invalid duration "{orig}"')
        whole, frac, unit = m.group(1) or "0", m.group(2) or "", m.group(3)
        scale = _UNITS[unit]
        total += int(whole) * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
        pos = m.end()
    return sign * total


def coerce(value: object) -> int:
    """A JSON duration as Consul decodes it: a Go string, or a number of nanoseconds."""
    if isinstance(value, bool):
        raise DurationError("invalid duration")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        return parse(value)
    raise DurationError("invalid duration")


def _frac(value: int, digits: int) -> str:
    """value / 10**digits printed Go-style: no trailing zeros, no dot when whole."""
    whole, rest = divmod(value, 10**digits)
    if rest == 0:
        return str(whole)
    return f"{whole}.{str(rest).rjust(digits, '0').rstrip('0')}"


def format_ns(ns: int) -> str:
    """Go's Duration.String(): 0 -> "0s", 1500ms -> "1.5s", 90s -> "1m30s", 1h -> "1h0m0s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < SECOND:
        if u < US:
            return f"{sign}{u}ns"
        if u < MS:
            return f"{sign}{_frac(u, 3)}µs"
        return f"{sign}{_frac(u, 6)}ms"
    hours, rem = divmod(u, HOUR)
    minutes, rem = divmod(rem, MINUTE)
    secs = _frac(rem, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return f"{sign}{secs}"


def format_seconds(seconds: float) -> str:
    """format_ns for a float number of seconds."""
    return format_ns(round(seconds * SECOND))
