"""PURE: what ``auth/token/lookup-self`` says about a token, and when to act on it.

Shared by the controller's token keeper (renew, export the expiry) and ``controllerctl check``
(warn before it lapses), so both read a lookup the same way. Times are unix seconds.

- **expiry**: when the token stops working unless it is renewed again (Vault's
  ``expire_time``; ``now + ttl`` if only the ttl is given); ``None`` for a token without a TTL
  (a root token), exported as 0.
- **lapse**: when it stops working whatever anyone does. A renewable token can be renewed up
  to its ``explicit_max_ttl`` (a periodic token without one, forever); a token that cannot be
  renewed lapses at its expiry. The auth mount's own max TTL is not visible to lookup-self, so
  a non-periodic renewable token's lapse is the explicit limit only, and the keeper notices the
  mount limit when a renewal gives less than it asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RENEW_MIN = 1.0  # never renew more often than this, whatever the TTL
RETRY_BASE = 1.0  # first retry of a failed lookup or renewal
RETRY_CAP = 30.0  # retries double up to this
WATCH_CAP = 300.0  # a token nobody here renews is looked at at least this often
FILE_WATCH_CAP = 30.0  # a token file (Nomad's) is looked up at least this often

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(text: object) -> float | None:
    """RFC 3339 (Vault writes nanoseconds and ``Z``) -> unix seconds; None if absent/unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    cleaned = _FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(cleaned).timestamp()
    except ValueError:
        return None


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


@dataclass(frozen=True)
class TokenFacts:
    """The fields of a lookup-self answer that decide renewal and expiry (no secret in here)."""

    ttl: int
    expire_time: float | None
    renewable: bool
    period: int
    explicit_max_ttl: int
    creation_time: int
    creation_ttl: int
    policies: tuple[str, ...]

    @classmethod
    def from_lookup(cls, answer: dict[str, Any] | None) -> TokenFacts:
        data = (answer or {}).get("data") or {}
        return cls(
            ttl=_int(data.get("ttl")),
            expire_time=parse_time(data.get("expire_time")),
            renewable=bool(data.get("renewable")),
            period=_int(data.get("period")),
            explicit_max_ttl=_int(data.get("explicit_max_ttl")),
            creation_time=_int(data.get("creation_time")),
            creation_ttl=_int(data.get("creation_ttl")),
            policies=tuple(str(p) for p in data.get("policies") or ()),
        )

    @property
    def expiring(self) -> bool:
        return self.ttl > 0 or self.expire_time is not None

    def expiry(self, now: float) -> float | None:
        """When it stops working unless renewed; None: never (no TTL)."""
        if self.expire_time is not None:
            return self.expire_time
        return now + self.ttl if self.ttl > 0 else None

    def lapse(self, now: float) -> float | None:
        """When it stops working even if renewed on time; None: not foreseeable (see module)."""
        if not self.expiring:
            return None
        if not self.renewable:
            return self.expiry(now)
        if self.explicit_max_ttl > 0 and self.creation_time > 0:
            return float(self.creation_time + self.explicit_max_ttl)
        return None

    def increment(self) -> str | None:
        """What to ask renew-self for: nothing for a periodic token (Vault applies the period),
        else the token's own TTL, so a renewal keeps the shape it was created with."""
        if self.period > 0 or self.creation_ttl <= 0:
            return None
        return f"{self.creation_ttl}s"


def expiry_gauge(facts: TokenFacts, now: float) -> float:
    """The value of mesh_vault_token_expiry_timestamp_seconds: unix seconds, 0 = no expiry."""
    expiry = facts.expiry(now)
    return 0.0 if expiry is None else float(expiry)


def renew_delay(facts: TokenFacts) -> float:
    """Renew when half of the TTL left at the last lookup has passed: a failed renewal then
    still has the other half for its retries."""
    return max(RENEW_MIN, facts.ttl / 2)


def watch_delay(facts: TokenFacts, from_file: bool) -> float:
    """How long until the next lookup of a token the controller does not renew."""
    cap = FILE_WATCH_CAP if from_file else WATCH_CAP
    if facts.ttl <= 0:
        return cap
    return min(cap, max(RENEW_MIN, facts.ttl / 2))


def retry_delay(failures: int, facts: TokenFacts | None) -> float:
    """Doubling from RETRY_BASE to RETRY_CAP, and never past a quarter of the TTL last seen,
    so a short-lived token gets several tries before it lapses."""
    delay: float = min(RETRY_CAP, RETRY_BASE * 2.0 ** max(0, failures - 1))
    if facts is not None and facts.ttl > 0:
        delay = min(delay, max(RENEW_MIN, facts.ttl / 4))
    return delay
