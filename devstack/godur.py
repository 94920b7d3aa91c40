"""Go's ``time.Duration`` for both twins: ``time.ParseDuration`` and ``Duration.String()``.

Consul accepts check intervals as Go duration strings or nanoseconds and prints them back
with ``Duration.String()``; Nomad prints lock TTLs and shutdown delays the same way and
parses ``?wait=`` and lock TTLs with ``time.ParseDuration``. One implementation of Go's
grammar and its error texts (``time: invalid duration "x"``, ``time: missing unit in
duration "5"``, ``time: unknown unit "x" in duration "1x"``) serves both twins, so they
cannot drift apart. The product has its own parser (crds_equivalent.goparse); the twins
never import product code.
"""

from __future__ import annotations

NS = 1
US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# time/format.go unitMap
_UNITS = {"ns": NS, "us": US, "µs": US, "μs": US, "ms": MS, "s": SECOND, "m": MINUTE, "h": HOUR}
_MAX = 1 << 63


class DurationError(ValueError):
    """A value Go's ``time.ParseDuration`` rejects; ``str()`` is Go's message."""


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _digits(s: str, pos: int) -> int:
    end = pos
    while end < len(s) and s[end].isascii() and s[end].isdigit():
        end += 1
    return end


def parse(text: str) -> int:
    """Go's ``time.ParseDuration`` ("1h2m3.5s" -> nanoseconds); raises DurationError.

    Follows time/format.go: optional sign, the special case "0", then terms of
    ``[0-9]*(\\.[0-9]*)?unit``; fractions are scaled per unit and truncated.
    """
    invalid = DurationError("time: invalid duration " + _quote(text))
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    pos = 0
    while pos < len(s):
        if not (s[pos] == "." or (s[pos].isascii() and s[pos].isdigit())):
            raise invalid
        end = _digits(s, pos)
        whole = int(s[pos:end]) if end > pos else 0
        pre = end > pos
        if whole >= _MAX:
            raise invalid
        pos = end
        frac, scale, post = 0, 1, False
        if pos < len(s) and s[pos] == ".":
            end = _digits(s, pos + 1)
            post = end > pos + 1
            digits = s[pos + 1 : end]
            if digits:
                frac, scale = int(digits), 10 ** len(digits)
            pos = end
        if not pre and not post:
            raise invalid
        end = pos
        while end < len(s) and not (s[end] == "." or (s[end].isascii() and s[end].isdigit())):
            end += 1
        if end == pos:
            raise DurationError("time: missing unit in duration " + _quote(text))
        unit_text = s[pos:end]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise DurationError(
                "time: unknown unit " + _quote(unit_text) + " in duration " + _quote(text)
            )
        pos = end
        value = whole * unit + (frac * unit) // scale
        total += value
        if total > _MAX - (0 if neg else 1):
            raise invalid
    return -total if neg else total


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
    """Go's ``Duration.String()``: 0 -> "0s", 1.5 s -> "1.5s", 90 s -> "1m30s", 1 h -> "1h0m0s"."""
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
