"""Wire encoding the way Nomad's go-msgpack JSON handle writes it.

Nomad answers with compact JSON, keys in Go struct order, no HTML escaping and raw
UTF-8; zero times are null (go-msgpack v2), durations are integer nanoseconds except
variable lock TTLs, which are Go ``Duration.String()`` values (``devstack.godur``, shared
with the Consul twin). Everything that turns
Python values into Nomad's bytes lives here so the handlers never hand-format JSON.
"""

from __future__ import annotations

import datetime as _dt
import json
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


def parse_bool(text: str) -> bool:
    """Go strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')
