"""One record's slot: pending content on top of the stored one, what a write or a lost CAS
leaves pending, and the replay of pending derive functions on another writer's record."""

from __future__ import annotations

import asyncio

from controller.status.slots import Derive, FlushSignal, Slot, rederive
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionType, MeshStatus, Phase
from reconcilers.conditions import condition

KEY = JobKey("default", "web")
STORED = MeshStatus(
    phase=Phase.INJECTED,
    conditions=(condition(ConditionType.SIDECAR_INJECTED, True, "Registered"),),
)


def message(text: str) -> Derive:
    return lambda p: (p or MeshStatus()).model_copy(update={"message": text})


def error(previous: MeshStatus | None) -> MeshStatus | None:
    return previous.model_copy(update={"last_error": "boom"}) if previous else None


def nothing(previous: MeshStatus | None) -> MeshStatus | None:
    return None


def test_rederive_replays_in_order_and_skips_functions_that_store_nothing() -> None:
    theirs = STORED.model_copy(update={"issuer": "int-2"})
    replayed = rederive(theirs, [message("first"), nothing, error, message("last")])
    assert replayed is not None
    assert (replayed.message, replayed.last_error, replayed.issuer) == ("last", "boom", "int-2")


def test_rederive_is_none_when_the_winner_already_has_our_content() -> None:
    theirs = STORED.model_copy(update={"message": "same"})
    assert rederive(theirs, [message("same")]) is None
    assert rederive(None, [error]) is None  # nothing to derive from, nothing derived


def test_readers_see_pending_content_and_a_write_clears_only_what_it_sent() -> None:
    slot = Slot(KEY, 7, STORED, seen_at=0.0)
    slot.accept(message("a")(STORED) or STORED, message("a"), 0.0)
    sent, used = slot.pending, len(slot.fns)
    assert slot.current is sent and not slot.idle
    later = message("b")(sent)
    assert later is not None
    slot.accept(later, message("b"), 0.0)  # accepted while the write of ``sent`` was in flight

    assert sent is not None
    slot.written(sent, 8, sent, used, at=5.0)
    assert (slot.index, slot.stored, slot.written_at) == (8, sent, 5.0)
    assert slot.pending is later and len(slot.fns) == 1  # b is still to be written

    slot.written(later, 9, later, 1, at=6.0)
    assert slot.idle and slot.fns == [] and slot.current is later


def test_a_reread_replays_pending_functions_on_the_winners_record() -> None:
    slot = Slot(KEY, 7, STORED, seen_at=0.0)
    slot.accept(message("ours")(STORED) or STORED, message("ours"), 0.0)
    theirs = STORED.model_copy(update={"last_error": "theirs"})
    slot.reread(9, theirs, at=3.0)
    assert slot.index == 9 and slot.stored is theirs
    assert slot.pending is not None
    assert (slot.pending.message, slot.pending.last_error) == ("ours", "theirs")

    slot.reread(10, slot.pending, at=4.0)  # the winner wrote exactly what we meant to
    assert slot.idle and slot.fns == []


async def test_the_flush_signal_wakes_its_waiters_when_the_write_ends() -> None:
    signal = FlushSignal()
    assert signal.is_set() and await signal.wait()  # nothing in flight: no wait
    signal.clear()
    waiters = [asyncio.ensure_future(signal.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    signal.set()
    assert await asyncio.gather(*waiters) == [True, True]
    assert signal.is_set()


async def test_a_cancelled_waiter_does_not_stop_the_others_waking() -> None:
    signal = FlushSignal()
    signal.clear()
    gone, kept = asyncio.ensure_future(signal.wait()), asyncio.ensure_future(signal.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    signal.set()
    assert await kept is True and gone.cancelled()
