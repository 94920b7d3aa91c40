"""Wire encoding the way Nomad's go-msgpack JSON handle writes it.

Nomad answers with compact JSON, keys in Go struct order, no HTML escaping and raw
UTF-8; zero times are null (go-msgpack v2), durations are integer nanoseconds except
variable lock TTLs, which are Go ``Duration.String()`` values. Everything that turns
Python values into Nomad's bytes lives here so the handlers never hand-format JSON.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
import uuid
from typing import Any

NS = 1_000_000_000


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def new_id() -> str:
    return str(uuid.uuid4())


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int | None) -> str | None:
    """A Go time.Time as JSON: RFC3339Nano, or null for the zero time."""
    if not ns:
        return None
    secs, frac = divmod(ns, NS)
    base = _dt.datetime.fromtimestamp(secs, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def parse_rfc3339(text: str | None) -> int:
    """``rfc3339`` reversed (nanoseconds since the epoch; 0 for null)."""
    if not text:
        return 0
    head, _, rest = text.rstrip("Z").partition(".")
    base = _dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC)
    return int(base.timestamp()) * NS + (int(rest.ljust(9, "0")[:9]) if rest else 0)


def omitempty(d: dict[str, Any]) -> dict[str, Any]:
    """Drop every zero-valued key, as codec ``_struct omitempty`` does."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if v is None or v is False or v == "" or v == [] or v == {}:
            continue
        if isinstance(v, int | float) and not isinstance(v, bool) and v == 0:
            continue
        out[k] = v
    return out


_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": NS,
    "m": 60 * NS,
    "h": 3600 * NS,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Go ``time.ParseDuration`` (returns nanoseconds); ValueError on bad input."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * round(total)


def format_go_duration(ns: int) -> str:
    """Go ``Duration.String()``: 15s, 1m0s, 1h0m0s, 1.5s, 300ms, 0s."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < NS:
        if ns < 1_000:
            out = f"{ns}ns"
        elif ns < 1_000_000:
            out = _frac(ns, 1_000) + "µs"
        else:
            out = _frac(ns, 1_000_000) + "ms"
    else:
        h, rem = divmod(ns, 3600 * NS)
        m, rem = divmod(rem, 60 * NS)
        sec = _frac(rem, NS) + "s"
        if h:
            out = f"{h}h{m}m{sec}"
        elif m:
            out = f"{m}m{sec}"
        else:
            out = sec
    return ("-" if neg else "") + out


def _frac(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def parse_bool(text: str) -> bool:
    """Go strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')
