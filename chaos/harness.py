"""The small harness every chaos scenario runs in: a result record, a request counter, a
runner that bounds each scenario in time and never lets one failure hide the others.

A scenario is an async function returning an :class:`Outcome`: whether its invariant held, the
figures RELIABILITY.md collects (time to converge, calls made, versions per job, requests
failed), and — when it did not hold — the cause. A scenario that raises or overruns its budget
is reported as not held, with the exception as its cause; it is never retried or skipped.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.nomad import NomadTwin


@dataclass
class Outcome:
    held: bool
    figures: dict[str, Any] = field(default_factory=dict)
    cause: str = ""


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    invariant: str
    run: Callable[[], Awaitable[Outcome]]
    budget: float  # seconds of wall time before the scenario counts as hung


@dataclass
class Report:
    scenario: Scenario
    outcome: Outcome
    seconds: float

    def line(self) -> str:
        verdict = "held" if self.outcome.held else "DID NOT HOLD"
        figs = ", ".join(f"{k}={_fmt(v)}" for k, v in self.outcome.figures.items())
        text = f"[{self.scenario.number}] {self.scenario.name}: {verdict} in {self.seconds:.1f}s"
        if figs:
            text += f" ({figs})"
        if not self.outcome.held:
            text += f" -- cause: {self.outcome.cause}"
        return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


class Check:
    """Collects invariant violations; a scenario holds when there are none."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def that(self, ok: bool, message: str) -> bool:
        if not ok:
            self.failures.append(message)
        return ok

    def outcome(self, figures: dict[str, Any]) -> Outcome:
        return Outcome(held=not self.failures, figures=figures, cause="; ".join(self.failures))


class RequestCounter:
    """Counts every /v1/ request the Nomad twin receives (from any client, any process), by
    second and by path, by hooking the fault layer every request passes through."""

    def __init__(self, twin: NomadTwin) -> None:
        self.by_path: Counter[str] = Counter()
        self.by_second: Counter[int] = Counter()
        self.failed = 0
        self._t0 = time.monotonic()
        faults = twin.faults
        original = faults.should_fail

        def counted(path: str) -> bool:
            self.by_path[path.split("?")[0]] += 1
            self.by_second[int(time.monotonic() - self._t0)] += 1
            fail = original(path)
            self.failed += int(fail)
            return fail

        faults.should_fail = counted  # type: ignore[method-assign]

    @property
    def total(self) -> int:
        return sum(self.by_path.values())

    def peak_per_second(self) -> int:
        return max(self.by_second.values(), default=0)

    def writes(self) -> int:
        """Job registrations (POST /v1/job/<id>), by anyone."""
        return self.by_path_matching(lambda p: p.startswith("/v1/job/") and p.count("/") == 3)

    def by_path_matching(self, pred: Callable[[str], bool]) -> int:
        return sum(n for p, n in self.by_path.items() if pred(p))


class Unmet(AssertionError):
    """A scenario's wait ran out: the world did not reach the state the invariant needs."""


async def run_scenario(scenario: Scenario) -> Report:
    started = time.monotonic()
    try:
        async with asyncio.timeout(scenario.budget):
            outcome = await scenario.run()
    except TimeoutError:
        outcome = Outcome(False, cause=f"did not finish within its {scenario.budget:.0f}s budget")
    except Exception as exc:  # a crashed scenario is a scenario that did not hold
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
        outcome = Outcome(False, cause=f"{type(exc).__name__} at {where}: {exc}")
    return Report(scenario, outcome, time.monotonic() - started)


async def wait_until(
    check: Callable[[], Any], *, within: float, every: float = 0.1, what: str = "condition"
) -> float:
    """Poll until ``check`` (sync or async) is truthy; return the seconds it took."""
    start = time.monotonic()
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise Unmet(f"{what} did not hold within {within:.0f}s")
        await asyncio.sleep(every)
