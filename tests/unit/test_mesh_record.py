"""The mesh reconciler's status write (``reconcilers.mesh.record``): what its derive function
stores onto a record other reconcilers also write, and what it keeps while the write waits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.runtime.clock import FakeClock
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionType, MeshStatus, Phase
from reconcilers import conditions as cond
from reconcilers.mesh.record import MeshRecord, OwnedFields

Derive = Callable[[MeshStatus | None], MeshStatus | None]

JOB: dict[str, Any] = {
    "ID": "web",
    "JobModifyIndex": 41,
    "TaskGroups": [{"Name": "g", "Meta": {"mesh.tls.injected": "m1"}}],
}


class CapturingStore:
    """Applies each derive function to the record it holds, as ``StatusStore.update`` does."""

    def __init__(self, record: MeshStatus | None) -> None:
        self.record = record
        self.fns: list[Derive] = []

    async def update(self, namespace: str, job: str, fn: Derive) -> MeshStatus | None:
        self.fns.append(fn)
        derived = fn(self.record)
        if derived is not None:
            self.record = derived
        return self.record


async def test_a_write_keeps_the_health_reconcilers_fields_and_records_its_own() -> None:
    health = cond.condition(ConditionType.CONSUL_HEALTHY, True, "Passing")
    stored = MeshStatus(conditions=(health,), cert_not_after="2027-01-01T00:00:00+00:00")
    store = CapturingStore(stored)
    record = MeshRecord(store, FakeClock(), {})  # type: ignore[arg-type]
    injected = cond.condition(ConditionType.SIDECAR_INJECTED, True, "Registered")

    await record.write(JobKey("default", "web"), JOB, [injected], written=41)

    after = store.record
    assert after is not None
    assert after.cert_not_after == "2027-01-01T00:00:00+00:00"
    assert {c.type for c in after.conditions} == {
        ConditionType.CONSUL_HEALTHY,
        ConditionType.SIDECAR_INJECTED,
    }
    assert (after.observed_index, after.written_index) == (41, 41)
    assert after.spec_hash == "m1"


async def test_a_pending_write_holds_its_facts_not_the_job_it_came_from() -> None:
    """The store keeps a derive function until its record is written (under load, until the
    rollout ends): it must not keep the job, whose parsed JSON is ~10 kB."""
    store = CapturingStore(None)
    record = MeshRecord(store, FakeClock(), {})  # type: ignore[arg-type]
    job = {**JOB, "Payload": "x" * 10_000}

    await record.write(JobKey("default", "web"), job, [], phase=Phase.INJECTED)

    (fn,) = store.fns
    assert isinstance(fn, OwnedFields)
    held = [getattr(fn, name) for name in OwnedFields.__slots__]
    assert all(value is not job for value in held)
    assert dict(fn.owned)["phase"] == Phase.INJECTED


def test_a_stopped_write_records_nothing_for_a_job_never_recorded() -> None:
    derive = OwnedFields((), datetime(2026, 1, 1, tzinfo=UTC), "m1", (), True)
    assert derive(None) is None
    kept = derive(MeshStatus(phase=Phase.READY))
    assert kept is not None and kept.phase == Phase.READY
