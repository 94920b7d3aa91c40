"""Count the Nomad API calls a controller makes, by client, for the call-budget tests.

The bench counts requests at its twin process; in-process tests need no server hook: this
wraps ``NomadClient.request`` (every call but the event stream goes through it) for the
duration of a test and records (client, method, path), so a test can ask what one App's
client sent between two marks, apart from the users' own calls.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from controller.nomad.client import NomadClient

VARIABLES = re.compile(r"^/v1/vars?(/|$)")


class NomadCalls:
    """Every ``NomadClient.request`` made while installed, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []

    def mark(self) -> int:
        return len(self.calls)

    def of(self, client: NomadClient, since: int = 0) -> Counter[str]:
        """``"METHOD path"`` counts of ``client``'s calls after ``since``."""
        return Counter(f"{m} {p}" for c, m, p in self.calls[since:] if c == id(client))

    def job_api(self, client: NomadClient, since: int = 0) -> Counter[str]:
        """The same, without Variables (status records and the leader lock)."""
        return Counter(
            {k: v for k, v in self.of(client, since).items() if not VARIABLES.match(k.split()[1])}
        )

    def writes(self, client: NomadClient, since: int = 0) -> Counter[str]:
        """Every call but reads, Variables included."""
        return Counter({k: v for k, v in self.of(client, since).items() if not k.startswith("GET")})


@contextmanager
def counting_nomad_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[NomadCalls]:
    calls = NomadCalls()
    original = NomadClient.request

    async def request(self: NomadClient, method: str, path: str, **kwargs: Any) -> Any:
        calls.calls.append((id(self), method.upper(), path))
        return await original(self, method, path, **kwargs)

    monkeypatch.setattr(NomadClient, "request", request)
    yield calls
