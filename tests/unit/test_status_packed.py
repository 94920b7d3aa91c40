"""Stored status records packed to strings: the round trip, the bounded table of recent
parsed records, and what a slot costs per job once its record is packed."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from controller.status.packed import PACKER, RecordPacker
from controller.status.slots import Slot
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionType, MeshStatus, Phase
from reconcilers.conditions import condition


def record(i: int) -> MeshStatus:
    """A record shaped like a converged job's: six conditions with reasons and messages."""
    kinds = list(ConditionType)[:6]
    return MeshStatus(
        phase=Phase.INJECTED,
        observed_index=1000 + i,
        spec_hash=f"1:{i:016x}",
        conditions=tuple(
            condition(kind, n < 3, "Registered" if n < 3 else "ConsulNotConfigured")
            for n, kind in enumerate(kinds)
        ),
        message="waiting for health on the TLS port",
        updated_at=f"2026-12-02T13:59:{i % 60:02d}.123456+00:00",
        written_index=1000 + i,
        cert_not_after="2026-12-05T13:59:30Z",
    )


def test_a_packed_record_parses_back_to_the_same_content() -> None:
    packer = RecordPacker(recent=1)
    packed = packer.pack(record(1))
    packer.pack(record(2))  # pushes record 1 out of the recent table: the next read parses
    assert packer.unpack(packed) == record(1)
    assert packer.parses == 1


def test_recent_records_are_served_without_parsing_and_the_table_stays_bounded() -> None:
    packer = RecordPacker(recent=3)
    strings = [packer.pack(record(i)) for i in range(5)]
    assert packer.unpack(strings[4]) is packer.unpack(strings[4])
    assert packer.parses == 0
    assert [packer.unpack(s).observed_index for s in strings] == [1000 + i for i in range(5)]
    assert packer.parses == 5  # each was out of the table when read (oldest first)
    assert len(packer._parsed) == 3


def test_a_record_object_packs_once_while_recent_and_an_equal_one_packs_anew() -> None:
    packer = RecordPacker(recent=2)
    first = record(1)
    packed = packer.pack(first)
    assert packer.pack(first) is packed and packer.packs == 1
    assert packer.pack(record(1)) == packed and packer.packs == 2  # another object: packed
    parsed = packer.unpack(packer.pack(record(2)))  # the record just packed, not parsed
    assert packer.pack(parsed) == packer.pack(record(2)) and packer.parses == 0


def test_a_write_packs_the_record_it_stored_from_its_items_and_not_the_one_it_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write's record is packed once, from the Items the write made for Nomad; the record it
    sent (what was pending) is known by object and not packed again to be compared."""
    slot = Slot(JobKey("default", "web"), 7, record(1), seen_at=0.0)
    slot.accept(record(2), lambda _base: record(2), 0.0)
    sent = slot.pending
    assert sent is not None
    stamped = sent.model_copy(update={"updated_at": "2026-12-03T18:00:00+00:00"})
    items = stamped.to_items()
    made = []
    real = MeshStatus.to_items
    monkeypatch.setattr(MeshStatus, "to_items", lambda self: made.append(self) or real(self))
    before = PACKER.packs

    slot.written(stamped, 8, sent, 1, at=1.0, items=items)

    assert (PACKER.packs - before, made) == (1, [])
    assert slot.idle and slot.index == 8 and slot.stored == stamped
    assert slot.packed == RecordPacker().pack(stamped)  # the same string as packed anew


def test_a_slot_keeps_its_stored_record_as_a_string() -> None:
    slot = Slot(JobKey("default", "web"), 7, record(1), seen_at=0.0)
    assert isinstance(slot.packed, bytes)
    assert slot.stored == record(1) and slot.current == record(1)
    slot.written(record(2), 8, record(2), 0, at=1.0)
    assert slot.stored == record(2) and slot.index == 8
    slot.stored = None
    assert slot.packed is None and slot.current is None


def test_a_slot_costs_far_less_than_the_record_it_holds() -> None:
    """A bound a regression to keeping MeshStatus objects (~10 kB a slot with its record,
    measured) breaks; packed, ~1.6 kB a slot with its key and path, plus this process's table
    of recent records (at most 128, shared by all slots) spread over the slots."""
    n = 2000
    items = [record(i).to_items() for i in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        slots = {
            f"mesh-controller/status/default/job-{i:05d}": Slot(
                JobKey("default", f"job-{i:05d}"), i + 1, MeshStatus.from_items(items[i]), 0.0
            )
            for i in range(n)
        }
        gc.collect()
        per_slot = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert len(slots) == n
    assert per_slot < 5000, per_slot


def test_every_field_survives_the_deflated_round_trip() -> None:
    """Fields the preset dictionary does not spell (edges, warnings, JSON-valued items) come
    back as they went in."""
    full = record(7).model_copy(
        update={
            "retry": '{"attempts":2}',
            "last_remediation": '{"kind":"restart"}',
            "last_error": "boom",
            "warnings": ("allow names nobody",),
            "issuer": "int-2",
            "verified_at": "2026-12-02T14:00:00+00:00",
        }
    )
    packer = RecordPacker(recent=0)
    packed = packer.pack(full)
    assert len(packed) < len(full.model_dump_json()) / 2
    assert packer.unpack(packed) == full


def test_pending_content_is_held_packed_and_a_write_clears_it_after_the_table_forgot_it() -> None:
    """A cold start holds thousands of records pending at once: each slot keeps its pending
    content packed too, and the write that sent it clears it by content, whether or not the
    parsed record is still in the table of recent ones."""
    slots = [Slot(JobKey("default", f"job-{i:05d}"), 7, record(i), seen_at=0.0) for i in range(300)]
    for i, slot in enumerate(slots):
        slot.accept(record(i + 1000), lambda p, i=i: record(i + 1000), 1.0)
    assert all(isinstance(s.pending_packed, bytes) and not s.idle for s in slots)
    for i, slot in enumerate(slots):  # the first ones' parsed records left the table long ago
        sent = slot.pending
        assert sent == record(i + 1000)
        slot.written(sent, 8, sent, 1, at=2.0)
    assert all(
        s.idle and s.fns == [] and s.current == record(i + 1000) for i, s in enumerate(slots)
    )


def test_a_slot_with_pending_content_costs_far_less_than_the_records_it_holds() -> None:
    """A bound a regression to keeping pending MeshStatus objects (~8.7 kB each once the
    table of recent parsed records has let them go) breaks."""
    n = 2000
    stored = [record(i).to_items() for i in range(n)]
    pending = [record(i + n).to_items() for i in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        slots = [
            Slot(JobKey("default", f"job-{i:05d}"), i + 1, MeshStatus.from_items(stored[i]), 0.0)
            for i in range(n)
        ]
        for i, slot in enumerate(slots):
            slot.accept(MeshStatus.from_items(pending[i]), lambda p: p, 1.0)
        gc.collect()
        per_slot = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert all(s.has_pending for s in slots)
    assert per_slot < 5000, per_slot
