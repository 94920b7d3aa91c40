"""Cron expressions as Nomad evaluates ``periodic`` specs (github.com/hashicorp/cronexpr).

Nomad's ``structs.PeriodicConfig.Next`` calls ``CronParseNext`` -> ``cronexpr.Parse(spec)
.Next(from)``, so the twin needs the same field layout to launch children when Nomad
would:

- five fields (``min hour dom month dow``): a ``0`` seconds field is prepended and a ``*``
  year field appended; six fields: ``0`` seconds prepended; seven: ``sec min hour dom
  month dow year``;
- ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@hourly``;
- ``*``, ``?``, ``a``, ``a-b``, ``*/n``, ``a/n``, ``a-b/n``, comma lists, month and
  weekday names (``JAN``, ``MON``), weekday ``7`` as Sunday;
- day of month and day of week: when both are restricted a day matching either runs
  (classic cron), otherwise the restricted one decides.

Not supported (a ``CronError`` says so, so the twin never silently launches at a wrong
time): ``L``, ``W`` and ``#``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

PREDEFINED = {
    "@yearly": "0 0 0 1 1 * *",
    "@annually": "0 0 0 1 1 * *",
    "@monthly": "0 0 0 1 * * *",
    "@weekly": "0 0 0 * * 0 *",
    "@daily": "0 0 0 * * * *",
    "@hourly": "0 0 * * * * *",
}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (name, low, high)
FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
    ("year", 1970, 2099),
)
_TERM = re.compile(r"^(\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/([0-9]+))?$")


class CronError(ValueError):
    """A spec the twin cannot evaluate (malformed, or a cronexpr feature it lacks)."""


@dataclass(frozen=True)
class Cron:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    years: frozenset[int]
    dom_restricted: bool
    dow_restricted: bool

    def _day_ok(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_restricted and self.dow_restricted:
            return dom or dow
        if self.dow_restricted:
            return dow
        return dom

    def next(self, after: datetime) -> datetime | None:
        """The first instant strictly after ``after`` (whole seconds, same tzinfo), like
        ``cronexpr.Expression.Next``; ``None`` when no instant matches (e.g. a past year)."""
        tz = after.tzinfo
        t = after.replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        last_year = max(self.years)
        while t.year <= last_year:
            if t.year not in self.years:
                t = datetime(t.year + 1, 1, 1)
            elif t.month not in self.months:
                t = (
                    datetime(t.year + 1, 1, 1)
                    if t.month == 12
                    else datetime(t.year, t.month + 1, 1)
                )
            elif not self._day_ok(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t.replace(tzinfo=tz)
        return None


def _value(token: str, field: str, low: int, high: int) -> int:
    names = MONTHS if field == "month" else DAYS if field == "day-of-week" else None
    if names and token.upper() in names:
        return names.index(token.upper()) + (1 if field == "month" else 0)
    if re.fullmatch(r"\d*L|\d+W|LW", token.upper()):
        raise CronError(f"the devstack does not evaluate '{token}' in the {field} field")
    if not token.isdigit():
        raise CronError(f"syntax error in {field} field: '{token}'")
    value = int(token)
    if not low <= value <= high:
        raise CronError(f"syntax error in {field} field: '{token}'")
    return value


def _field(text: str, field: str, low: int, high: int) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    restricted = True
    for part in text.split(","):
        if "#" in part:
            raise CronError(f"the devstack does not evaluate '{part}' in the {field} field")
        m = _TERM.match(part)
        if m is None:
            raise CronError(f"syntax error in {field} field: '{part}'")
        span, step_text = m.group(1), m.group(2)
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CronError(f"syntax error in {field} field: '{part}'")
        if span in ("*", "?"):
            start, end = low, high
            if step == 1:
                restricted = False
        elif "-" in span:
            a, b = span.split("-", 1)
            start, end = _value(a, field, low, high), _value(b, field, low, high)
        else:
            start = _value(span, field, low, high)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    if field == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values), restricted


def parse(spec: str) -> Cron:
    """Parse like ``cronexpr.Parse``; raises ``CronError``."""
    text = PREDEFINED.get(spec.strip().lower(), spec)
    parts = text.split()
    if len(parts) == 5:
        parts = ["0", *parts, "*"]
    elif len(parts) == 6:
        parts = ["0", *parts]
    elif len(parts) != 7:
        raise CronError(f"missing field(s): '{spec}'" if len(parts) < 5 else "too many fields")
    parsed = [
        _field(p, name, low, high) for p, (name, low, high) in zip(parts, FIELDS, strict=True)
    ]
    return Cron(
        seconds=parsed[0][0],
        minutes=parsed[1][0],
        hours=parsed[2][0],
        days=parsed[3][0],
        months=parsed[4][0],
        weekdays=parsed[5][0],
        years=parsed[6][0],
        dom_restricted=parsed[3][1],
        dow_restricted=parsed[5][1],
    )
