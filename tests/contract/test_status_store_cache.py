"""The status store's cache and coalesced writes against the Nomad twin's Variables: what a read
or a burst of updates costs in calls, and that a stale cache costs a retry but never a clobber.

Calls are counted by ``CountingVariables`` (they still go to the twin); every other assertion
reads the stored Variable, the record an operator sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from controller.nomad.client import NomadClient
from controller.nomad.errors import TransientError
from controller.nomad.variables import NomadVariables, Variable
from controller.runtime.clock import FakeClock
from controller.status.store import BUSY_AT, BUSY_FACTOR, ROLLOUT_HOLD, StatusStore, path_for
from crds_equivalent.status import (
    ROLLING_OUT,
    Condition,
    ConditionStatus,
    ConditionType,
    MeshStatus,
    Phase,
)
from tests.support.counting_variables import CountingVariables

pytestmark = pytest.mark.timeout(30)

INJECTED = MeshStatus(
    phase=Phase.INJECTED,
    observed_index=12,
    conditions=(
        Condition(
            type=ConditionType.SIDECAR_INJECTED, status=ConditionStatus.TRUE, reason="Registered"
        ),
    ),
)
HEALTHY = Condition(type=ConditionType.CONSUL_HEALTHY, status=ConditionStatus.TRUE, reason="Ok")
Fn = Callable[[MeshStatus | None], MeshStatus | None]


def with_message(message: str) -> Fn:
    return lambda p: (p or INJECTED).model_copy(update={"message": message})


def with_healthy(previous: MeshStatus | None) -> MeshStatus | None:
    assert previous is not None
    kept = tuple(c for c in previous.conditions if c.type != HEALTHY.type)
    return previous.model_copy(update={"conditions": (*kept, HEALTHY)})


def rollout(status: ConditionStatus, reason: str, message: str) -> Fn:
    def derive(previous: MeshStatus | None) -> MeshStatus | None:
        base = previous or INJECTED
        kept = tuple(c for c in base.conditions if c.type != ConditionType.ROLLED_OUT)
        rolled = Condition(
            type=ConditionType.ROLLED_OUT, status=status, reason=reason, message=message
        )
        return base.model_copy(update={"conditions": (*kept, rolled)})

    return derive


def with_error(previous: MeshStatus | None) -> MeshStatus | None:
    return previous.model_copy(update={"last_error": "re-issue did not help"}) if previous else None


async def items(variables: NomadVariables, job: str) -> Mapping[str, str]:
    var = await variables.get(path_for("default", job))
    assert var is not None
    return var.items


async def test_after_the_list_a_job_with_no_record_costs_no_read(nomad: NomadClient) -> None:
    variables = CountingVariables(nomad)
    await StatusStore(NomadVariables(nomad)).write("default", "old", INJECTED)
    store = StatusStore(variables)

    assert await store.keys() == [("default", "old")]
    assert await store.get("default", "new") is None
    assert await store.peek("default", "new") is None
    assert not await store.delete("default", "never")  # a child job's observe, say
    await store.update("default", "new", with_message("created"))
    assert (await items(NomadVariables(nomad), "new"))["message"] == "created"
    assert variables.calls == {"list": 1, "put": 1}  # no call for records the LIST lacked


async def test_records_are_read_once_and_kept_current_by_our_writes(nomad: NomadClient) -> None:
    variables = CountingVariables(nomad)
    await StatusStore(NomadVariables(nomad)).write("default", "web", INJECTED)
    store = StatusStore(variables)

    for _ in range(3):
        got = await store.get("default", "web")
        assert got is not None and got.same_content(INJECTED)
    await store.update("default", "web", with_healthy)
    got = await store.get("default", "web")
    assert got is not None and got.condition(ConditionType.CONSUL_HEALTHY) is not None
    assert variables.calls == {"get": 1, "put": 1}


async def test_a_record_the_list_shows_moved_is_read_again(nomad: NomadClient) -> None:
    variables = CountingVariables(nomad)
    ours, theirs = StatusStore(variables), StatusStore(NomadVariables(nomad))
    await ours.write("default", "web", INJECTED)
    await theirs.write("default", "web", INJECTED.model_copy(update={"message": "theirs"}))

    cached = await ours.get("default", "web")
    assert cached is not None and cached.message == ""  # ours does not know yet
    await ours.keys()  # the LIST shows another ModifyIndex
    got = await ours.get("default", "web")
    assert got is not None and got.message == "theirs"


async def test_a_burst_of_updates_is_one_write_now_and_one_when_the_window_ends(
    nomad: NomadClient,
) -> None:
    variables, clock = CountingVariables(nomad), FakeClock()
    store = StatusStore(variables, clock=clock, write_interval=1.0)
    flusher = asyncio.create_task(store.run())
    try:
        for n in range(10):
            returned = await store.update("default", "web", with_message(f"step {n}"))
            assert returned is not None and returned.message == f"step {n}"
        seen = await store.get("default", "web")
        assert seen is not None and seen.message == "step 9"  # readers see the pending content
        assert (await items(variables, "web"))["message"] == "step 0"

        await clock.advance(1.0)
        await clock.advance(0)  # let the flusher's write land
        assert (await items(variables, "web"))["message"] == "step 9"
        assert variables.calls["put"] == 2
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)


async def test_under_load_a_first_change_waits_for_its_window_and_goes_out_once(
    nomad: NomadClient,
) -> None:
    """A cold start: many records changing at once. Each record's injection, rollout and first
    health verdict land within one window, so each record is written once, not three times."""
    variables, clock = CountingVariables(nomad), FakeClock()
    store = StatusStore(variables, clock=clock, write_interval=1.0)
    jobs = [f"job-{n}" for n in range(BUSY_AT + 4)]
    flusher = asyncio.create_task(store.run())
    try:
        for job in jobs:
            await store.update("default", job, with_message("injected"))
        for job in jobs:
            await store.update("default", job, with_healthy)
        written = variables.calls.get("put", 0)
        assert written == BUSY_AT  # the first ones, before the store was busy, went out at once
        await clock.advance(1.0)
        await clock.advance(0)
        assert variables.calls["put"] == written  # busy: the rest wait BUSY_FACTOR windows
        await clock.advance(BUSY_FACTOR - 1.0)
        await clock.advance(0)
        # one more write per record: the first ones' second change, the others' only write
        assert variables.calls["put"] == written + len(jobs)
        for job in jobs:
            stored = await items(NomadVariables(nomad), job)
            assert stored["message"] == "injected" and "ConsulHealthy" in stored["conditions"]
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)


async def test_under_load_a_rollout_in_progress_waits_for_its_outcome_in_one_write(
    nomad: NomadClient,
) -> None:
    """A cold start whose rollouts take longer than the busy window: each new job's injection,
    its rollout's progress and its outcome are one write, made when the outcome is known; a
    rollout that does not end is written anyway when the settle hold runs out."""
    variables, clock = CountingVariables(nomad), FakeClock()
    store = StatusStore(variables, clock=clock, write_interval=1.0)
    load = [f"load-{n}" for n in range(BUSY_AT)]
    flusher = asyncio.create_task(store.run())
    try:
        for job in load:  # what makes the store busy; written at once
            await store.update("default", job, with_message("injected"))
        placing = rollout(ConditionStatus.FALSE, ROLLING_OUT, "waiting for placement")
        for job in ("quick", "slow", "stuck"):
            await store.update("default", job, placing)
        before = variables.calls.get("put", 0)
        await clock.advance(BUSY_FACTOR + 1.0)
        await clock.advance(0)
        judging = rollout(ConditionStatus.FALSE, ROLLING_OUT, "1/2 healthy")
        for job in ("quick", "slow", "stuck"):
            await store.update("default", job, judging)
        assert variables.calls.get("put", 0) == before  # still rolling: nothing written yet
        done = rollout(ConditionStatus.TRUE, "DeploymentSuccessful", "")
        await store.update("default", "quick", done)
        await clock.advance(0)
        assert variables.calls["put"] == before + 1  # its outcome known: one write, at once
        assert '"status":"True"' in (await items(NomadVariables(nomad), "quick"))["conditions"]

        await clock.advance(10.0)
        await store.update("default", "slow", done)
        await clock.advance(0)
        assert variables.calls["put"] == before + 2
        await clock.advance(120.0)  # far past 60 windows, the old hold: rollouts may be slow
        await clock.advance(0)
        assert variables.calls["put"] == before + 2 and store.pending == 1
        await clock.advance(ROLLOUT_HOLD - (BUSY_FACTOR + 1.0) - 10.0 - 120.0)
        await clock.advance(0)
        assert variables.calls["put"] == before + 3  # the hold ran out
        assert store.pending == 0
        stuck = (await items(NomadVariables(nomad), "stuck"))["conditions"]
        assert "1/2 healthy" in stuck
        for job in ("quick", "slow"):
            stored = await items(NomadVariables(nomad), job)
            assert "1/2 healthy" not in stored["conditions"]
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)


async def test_a_quiet_store_writes_a_rollout_in_progress_at_once(nomad: NomadClient) -> None:
    """The hold is for load only: one job changing alone is written as it changes."""
    variables, clock = CountingVariables(nomad), FakeClock()
    store = StatusStore(variables, clock=clock, write_interval=1.0)
    await store.update(
        "default", "web", rollout(ConditionStatus.FALSE, ROLLING_OUT, "waiting for placement")
    )
    assert variables.calls["put"] == 1
    assert "waiting for placement" in (await items(NomadVariables(nomad), "web"))["conditions"]


async def test_a_lost_cas_of_a_coalesced_write_replays_every_pending_change(
    nomad: NomadClient,
) -> None:
    clock = FakeClock()
    ours = StatusStore(NomadVariables(nomad), clock=clock, write_interval=1.0)
    theirs = StatusStore(NomadVariables(nomad), clock=clock)  # another process
    await ours.update("default", "web", with_message("mesh"))  # written at once
    await ours.update("default", "web", with_healthy)  # pending: the window has not ended
    await ours.update("default", "web", with_message("mesh again"))  # pending too
    await theirs.update("default", "web", with_error)  # moves the record: our CAS will lose

    await ours.flush()

    stored = await items(NomadVariables(nomad), "web")
    assert stored["last_error"] == "re-issue did not help"  # theirs, kept
    assert '"ConsulHealthy"' in stored["conditions"]  # ours, replayed on their record
    assert stored["message"] == "mesh again"
    again = await ours.get("default", "web")
    assert again is not None and again.last_error == "re-issue did not help"


async def test_losing_leadership_writes_once_and_leaves_a_newer_leaders_record(
    nomad: NomadClient,
) -> None:
    clock = FakeClock()
    old = StatusStore(NomadVariables(nomad), clock=clock, write_interval=1.0)
    new = StatusStore(NomadVariables(nomad), clock=clock)
    await old.update("default", "a", with_message("old leader"))
    await old.update("default", "a", with_message("old leader, later"))  # pending
    await old.update("default", "b", with_message("old leader"))
    await old.update("default", "b", with_message("old leader, later"))  # pending
    await new.update("default", "a", with_message("new leader"))  # a's CAS will lose

    await old.release(graceful=False)

    assert (await items(NomadVariables(nomad), "a"))["message"] == "new leader"
    assert (await items(NomadVariables(nomad), "b"))["message"] == "old leader, later"


async def test_handing_over_writes_everything_pending(nomad: NomadClient) -> None:
    clock = FakeClock()
    store = StatusStore(NomadVariables(nomad), clock=clock, write_interval=60.0)
    for job in ("a", "b", "c"):
        await store.update("default", job, with_message("first"))
        await store.update("default", job, with_message("last"))

    await store.release(graceful=True)

    for job in ("a", "b", "c"):
        assert (await items(NomadVariables(nomad), job))["message"] == "last"


async def test_a_delete_drops_what_was_pending_and_the_record_stays_gone(
    nomad: NomadClient,
) -> None:
    variables, clock = CountingVariables(nomad), FakeClock()
    store = StatusStore(variables, clock=clock, write_interval=1.0)
    await store.update("default", "gone", with_message("written"))
    await store.update("default", "gone", with_message("pending"))

    assert await store.delete("default", "gone")
    await store.flush()

    assert await NomadVariables(nomad).get(path_for("default", "gone")) is None
    assert await store.get("default", "gone") is None
    assert variables.calls["put"] == 1


class DownOnce(NomadVariables):
    """Nomad refuses the first CAS put (a 503 that outlasted the client's retries)."""

    refused = False

    async def cas_put(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable | None:
        if not self.refused:
            self.refused = True
            raise TransientError("503 no cluster leader", status=503)
        return await super().cas_put(path, items, cas=cas)


async def test_a_write_nomad_refused_stays_pending_and_the_flusher_retries_it(
    nomad: NomadClient,
) -> None:
    clock = FakeClock()
    store = StatusStore(DownOnce(nomad), clock=clock, write_interval=1.0)
    flusher = asyncio.create_task(store.run())
    try:
        with pytest.raises(TransientError):
            await store.update("default", "web", with_message("while Nomad is down"))
        seen = await store.get("default", "web")
        assert seen is not None and seen.message == "while Nomad is down"
        assert await NomadVariables(nomad).get(path_for("default", "web")) is None

        await clock.advance(5.0)
        await clock.advance(0)
        assert (await items(NomadVariables(nomad), "web"))["message"] == "while Nomad is down"
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
