"""PURE: when to try again after Nomad failed (or reverted) a deployment the controller caused.

Nomad never resumes a failed deployment: the scheduler places nothing more for that job
version (``nomad/deploymentwatcher/deployment_watcher.go``; the failed deployment stays the
version's). Registering the same job again changes nothing, since an unchanged spec is no new
version. So a retry is a *new job version*: without ``auto_revert`` the failed version is
still the job's latest, and the controller writes it again with a fresh ``mesh.tls.rotation``
nonce (the injection's own re-issue input, so the marker stays current); with ``auto_revert``
Nomad has registered the last stable, un-injected version, and the retry is the injection
itself. Either way each retry is one job write and one rolling deployment, so retries are
spaced by a capped exponential backoff — by default 5, 10, 20, then every 30 minutes: never
more than three in any hour — and the state lives in the status record (mesh-owned ``retry``)
so a new leader keeps counting instead of starting again at attempt one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

DEPLOYMENT_FAILED = "DeploymentFailed"
REVERTED = "Reverted"
ROLLBACK_MARK = " - rolling back to job version "  # structs.DeploymentStatusDescriptionRollback


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delays between retries (seconds)."""

    base: float = 300.0
    cap: float = 1800.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure (1-based)."""
        return min(self.cap, self.base * 2.0 ** max(0, failures - 1))


@dataclass(frozen=True)
class Retry:
    """The failure being retried and when the next attempt may be written."""

    attempts: int  # failures seen so far: the next write is retry number ``attempts``
    next_attempt: datetime
    deployment: str
    reason: str
    description: str

    def due(self, now: datetime) -> bool:
        return now >= self.next_attempt

    def wait(self, now: datetime) -> float:
        """Seconds until the next attempt (0 when due)."""
        return max(0.0, (self.next_attempt - now).total_seconds())

    def message(self) -> str:
        """What the status says: Nomad's description, which deployment, and when we retry."""
        what = "Nomad reverted the injection: " if self.reason == REVERTED else ""
        return (
            f"{what}{self.description} (deployment {self.deployment}); next attempt at "
            f"{self.next_attempt.isoformat(timespec='seconds')} (retry {self.attempts})"
        )

    def nonce(self) -> str:
        """The rotation nonce of the retry write: derived from the failed deployment, so two
        controllers retrying the same failure write the same version (EnforceIndex lets one)."""
        return f"retry-{self.attempts}-{self.deployment[:8]}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "attempts": self.attempts,
                "next_attempt": self.next_attempt.isoformat(),
                "deployment": self.deployment,
                "reason": self.reason,
                "description": self.description,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Retry | None:
        """The stored retry, or None when there is none (or it cannot be read: start over)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(
                attempts=int(data["attempts"]),
                next_attempt=datetime.fromisoformat(str(data["next_attempt"])),
                deployment=str(data["deployment"]),
                reason=str(data["reason"]),
                description=str(data["description"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def after_failure(
    previous: Retry | None,
    *,
    deployment: str,
    reason: str,
    description: str,
    now: datetime,
    backoff: Backoff,
) -> Retry:
    """The retry after ``deployment`` failed: the same one when it was already counted (a
    re-reconcile must not push the next attempt away), else one more failure, later."""
    if previous is not None and previous.deployment == deployment:
        return previous
    failures = (previous.attempts if previous is not None else 0) + 1
    return Retry(
        attempts=failures,
        next_attempt=now + timedelta(seconds=backoff.delay(failures)),
        deployment=deployment,
        reason=reason,
        description=description,
    )
