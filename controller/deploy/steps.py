"""What an install did, step by step, in words an operator can act on.

Every step of `controllerctl install` ends in one of three states: it changed something, it
found the thing already as wanted, or (with --dry-run) it would change something. The report
never holds a secret: tokens are named by their accessor at most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    WOULD_CHANGE = "would change"


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    what: str
    detail: tuple[str, ...] = ()  # e.g. the job diff; printed indented under the step


@dataclass
class InstallReport:
    dry_run: bool = False
    steps: list[Step] = field(default_factory=list)

    def changed(self, done: str, planned: str | None = None, detail: tuple[str, ...] = ()) -> None:
        """Record a change (``done``, past tense), or in a dry run the change that would be
        made (``planned``, imperative; defaults to ``done``)."""
        if self.dry_run:
            self.steps.append(Step(Outcome.WOULD_CHANGE, planned or done, detail))
        else:
            self.steps.append(Step(Outcome.CHANGED, done, detail))

    def unchanged(self, what: str, detail: tuple[str, ...] = ()) -> None:
        self.steps.append(Step(Outcome.UNCHANGED, what, detail))

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.outcome is not Outcome.UNCHANGED]

    @property
    def any_change(self) -> bool:
        return bool(self.changes)
