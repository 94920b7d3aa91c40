"""PURE: the state of an intermediate CA rotation, as stored in ``mesh-controller/rotation``.

A rotation is long (every meshed job rolls, wave after wave) and must survive the process that
drives it: the controller may fail over, an operator may Ctrl-C ``controllerctl rotate-ca``.
So every step is a transition of this record, written with CAS before the next step starts,
and whoever resumes reads where to continue. Stages::

    creating -> rolling (wave 0 .. n-1) -> retiring -> done
         \\______________\\________________\\-> failed (a wave failed: why, and which job)

``creating`` is idempotent by name: the new issuer is named after the rotation id, so a resume
finds the issuer it created before crashing instead of creating a second one. Every meshed job
gets the same rotation nonce (``ca-<id>``), so a job that already carries it is not rolled twice.
A record whose ``heartbeat`` is older than the take-over delay belongs to a dead driver.

Items (all strings): ``id stage trigger owner old_issuer new_issuer wave_size waves wave done
written message started_at updated_at heartbeat finished_at``; ``waves`` is a JSON list of
lists of ``[namespace, job]``, ``done`` a JSON list of ``[namespace, job]``, ``written`` a JSON
object ``"<namespace>/<job>" -> JobModifyIndex`` of the version the rotation wrote, and (only
when some job was skipped) ``skipped`` a JSON object ``"<namespace>/<job>" -> reason``: jobs
whose new version would wait for a human's canary promotion are left out rather than waited
for until the wave times out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from crds_equivalent.jobkey import JobKey


class Stage(StrEnum):
    CREATING = "creating"
    ROLLING = "rolling"
    RETIRING = "retiring"
    DONE = "done"
    FAILED = "failed"


ACTIVE = frozenset({Stage.CREATING, Stage.ROLLING, Stage.RETIRING})


class CorruptState(ValueError):
    """The Variable does not hold a rotation record this version understands."""


def plan_waves(jobs: Sequence[JobKey], size: int) -> tuple[tuple[JobKey, ...], ...]:
    """Jobs in a stable order (namespace, id), cut into waves of at most ``size``."""
    if size < 1:
        raise ValueError("wave size must be at least 1")
    ordered = sorted(dict.fromkeys(jobs))
    return tuple(tuple(ordered[i : i + size]) for i in range(0, len(ordered), size))


def _key_text(key: JobKey) -> str:
    return f"{key[0]}/{key[1]}"


@dataclass(frozen=True)
class RotationState:
    id: str
    stage: Stage
    trigger: str  # "cli" | "auto"
    owner: str
    old_issuer: str
    started_at: datetime
    heartbeat: datetime
    new_issuer: str = ""
    wave_size: int = 5
    waves: tuple[tuple[JobKey, ...], ...] = ()
    wave: int = 0  # the wave in progress; == len(waves) once every wave is done
    done: tuple[JobKey, ...] = ()
    written: Mapping[str, int] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    finished_at: datetime | None = None

    @property
    def nonce(self) -> str:
        return f"ca-{self.id}"

    @property
    def issuer_name(self) -> str:
        return f"mesh-int-{self.id}"

    @property
    def active(self) -> bool:
        return self.stage in ACTIVE

    @property
    def total_jobs(self) -> int:
        return sum(len(w) for w in self.waves)

    def current_wave(self) -> tuple[JobKey, ...]:
        return self.waves[self.wave] if self.wave < len(self.waves) else ()

    def is_skipped(self, key: JobKey) -> bool:
        return _key_text(key) in self.skipped

    def skip(self, key: JobKey, reason: str, now: datetime) -> RotationState:
        """Leave ``key`` out of the rotation, with the reason an operator will read."""
        skipped = dict(self.skipped)
        skipped[_key_text(key)] = reason
        done = self.done if key in self.done else (*self.done, key)
        return replace(self, skipped=skipped, done=done, heartbeat=now)

    def written_index(self, key: JobKey) -> int:
        return int(self.written.get(_key_text(key), 0))

    # --- transitions ----------------------------------------------------------------------

    def beat(self, owner: str, now: datetime) -> RotationState:
        return replace(self, owner=owner, heartbeat=now)

    def created(self, new_issuer: str, jobs: Sequence[JobKey], now: datetime) -> RotationState:
        waves = plan_waves(jobs, self.wave_size) if jobs else ()
        return replace(
            self,
            stage=Stage.ROLLING if waves else Stage.RETIRING,
            new_issuer=new_issuer,
            waves=waves,
            wave=0,
            heartbeat=now,
            message=f"new issuer {new_issuer} is the default; {len(jobs)} job(s) to roll",
        )

    def wrote(self, key: JobKey, modify_index: int, now: datetime) -> RotationState:
        written = dict(self.written)
        written[_key_text(key)] = modify_index
        return replace(self, written=written, heartbeat=now)

    def job_done(self, key: JobKey, now: datetime) -> RotationState:
        if key in self.done:
            return self
        return replace(self, done=(*self.done, key), heartbeat=now)

    def wave_finished(self, now: datetime) -> RotationState:
        nxt = self.wave + 1
        stage = Stage.ROLLING if nxt < len(self.waves) else Stage.RETIRING
        message = (
            f"wave {self.wave + 1}/{len(self.waves)} done"
            if stage is Stage.ROLLING
            else "every wave done; checking no leaf is left on the old issuer"
        )
        return replace(self, wave=nxt, stage=stage, heartbeat=now, message=message)

    def extra_wave(self, jobs: Sequence[JobKey], now: datetime) -> RotationState:
        """Jobs still serving old leaves at retirement (new since the plan, or re-submitted)."""
        waves = (*self.waves, *plan_waves(jobs, self.wave_size))
        done = tuple(k for k in self.done if k not in set(jobs))
        return replace(
            self,
            stage=Stage.ROLLING,
            waves=waves,
            wave=len(self.waves),
            done=done,
            heartbeat=now,
            message=f"{len(jobs)} job(s) still on the old issuer; rolling them",
        )

    def failed(self, reason: str, now: datetime) -> RotationState:
        return replace(self, stage=Stage.FAILED, message=reason, heartbeat=now, finished_at=now)

    def retry(self, owner: str, now: datetime) -> RotationState:
        """A failed rotation, resumed where it stopped (the failed wave runs again)."""
        if self.stage is not Stage.FAILED:
            return self
        stage = Stage.CREATING if not self.new_issuer else Stage.ROLLING
        if stage is Stage.ROLLING and self.wave >= len(self.waves):
            stage = Stage.RETIRING
        return replace(
            self, stage=stage, owner=owner, heartbeat=now, finished_at=None, message="resumed"
        )

    def retired(self, now: datetime) -> RotationState:
        return replace(
            self,
            stage=Stage.DONE,
            heartbeat=now,
            finished_at=now,
            message=f"old issuer {self.old_issuer} is read-only; every leaf is from "
            f"{self.new_issuer}" + self._skipped_note(),
        )

    def _skipped_note(self) -> str:
        if not self.skipped:
            return ""
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        return (
            f" except {len(self.skipped)} skipped job(s), whose leaves stay on the old issuer "
            f"until their next promoted version: {listed}"
        )

    def orphaned(self, me: str, now: datetime, stale_after: float) -> bool:
        """Active, and driven by nobody alive (or by ``me`` before a crash)."""
        if not self.active:
            return False
        return self.owner == me or (now - self.heartbeat).total_seconds() > stale_after

    # --- storage --------------------------------------------------------------------------

    def to_items(self) -> dict[str, str]:
        return {
            "id": self.id,
            "stage": str(self.stage),
            "trigger": self.trigger,
            "owner": self.owner,
            "old_issuer": self.old_issuer,
            "new_issuer": self.new_issuer,
            "wave_size": str(self.wave_size),
            "waves": json.dumps([[list(k) for k in w] for w in self.waves], separators=(",", ":")),
            "wave": str(self.wave),
            "done": json.dumps([list(k) for k in self.done], separators=(",", ":")),
            "written": json.dumps(dict(self.written), separators=(",", ":"), sort_keys=True),
            **(
                {"skipped": json.dumps(dict(self.skipped), separators=(",", ":"), sort_keys=True)}
                if self.skipped
                else {}
            ),
            "message": self.message,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.heartbeat.isoformat(),
            "heartbeat": self.heartbeat.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else "",
        }

    @classmethod
    def from_items(cls, items: Mapping[str, str]) -> RotationState:
        try:
            waves = tuple(
                tuple(JobKey(str(k[0]), str(k[1])) for k in w) for w in json.loads(items["waves"])
            )
            return cls(
                id=items["id"],
                stage=Stage(items["stage"]),
                trigger=items.get("trigger", ""),
                owner=items.get("owner", ""),
                old_issuer=items["old_issuer"],
                new_issuer=items.get("new_issuer", ""),
                wave_size=int(items.get("wave_size") or 5),
                waves=waves,
                wave=int(items.get("wave") or 0),
                done=tuple(
                    JobKey(str(k[0]), str(k[1])) for k in json.loads(items.get("done") or "[]")
                ),
                written={
                    str(k): int(v) for k, v in json.loads(items.get("written") or "{}").items()
                },
                skipped={
                    str(k): str(v) for k, v in json.loads(items.get("skipped") or "{}").items()
                },
                message=items.get("message", ""),
                started_at=datetime.fromisoformat(items["started_at"]),
                heartbeat=datetime.fromisoformat(items["heartbeat"]),
                finished_at=datetime.fromisoformat(items["finished_at"])
                if items.get("finished_at")
                else None,
            )
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise CorruptState(f"unreadable rotation record: {exc}") from None


def new_rotation(
    rotation_id: str, old_issuer: str, *, trigger: str, owner: str, wave_size: int, now: datetime
) -> RotationState:
    if wave_size < 1:
        raise ValueError("wave size must be at least 1")
    return RotationState(
        id=rotation_id,
        stage=Stage.CREATING,
        trigger=trigger,
        owner=owner,
        old_issuer=old_issuer,
        started_at=now,
        heartbeat=now,
        wave_size=wave_size,
        message="creating a new intermediate issuer",
    )
