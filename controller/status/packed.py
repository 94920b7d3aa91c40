"""Stored status records kept as one small deflated string each, parsed again when read.

The store keeps every job's stored record for as long as the process runs. As a MeshStatus it
costs ~8.7 kB (a pydantic object per condition, each with its own dict, set and strings); as
the JSON of its Variable Items ~1.3 kB; deflated against a preset dictionary of what every
record spells the same way (item names, condition types, statuses, the shape of a timestamp)
a few hundred bytes. At 10,000 jobs that is ~85 MB against a few MB of a 120 MB budget
(DESIGN §10), so a slot keeps the deflated string.

Parsing costs CPU (inflate, json, pydantic validation), and the same records are read in bursts
(a reconcile of the mesh, then health, then certs, of the same job): a bounded table of
recently packed or parsed records answers those reads without parsing. Records are frozen, and
equal strings hold equal content, so one parsed object can serve every reader of that string.
Packing costs as much (the Items, their JSON, deflate), and a write packs the record it sent
again to tell whether it is still what is pending: the same table, by object, answers that
without packing. A record is frozen, so an object packs to one string for as long as it lives.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from controller.runtime import jsonwire
from controller.runtime.recent import Recent
from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase

RECENT = 128  # parsed records kept; ~8.7 kB each: ~1.1 MB whatever the number of jobs. The
# reads that come together (one job's reconciles, its writes in flight) are a few dozen at most
# (12 workers); a miss costs one parse (~37 µs measured), so a bigger table buys little.

WBITS = -12  # raw deflate (no header or checksum: the bytes never leave the process), 4 kB


def _items_json(record: MeshStatus, items: Mapping[str, str] | None = None) -> bytes:
    return jsonwire.dumps(record.to_items() if items is None else items)


def _dictionary() -> bytes:
    """What records have in common, for deflate to refer to instead of repeating it: every
    condition type under each status, a full record's item names, and timestamps' shape."""
    stamp = "2026-01-01T00:00:00.000000+00:00"
    sample = MeshStatus(
        phase=Phase.INJECTED,
        observed_index=1,
        spec_hash="1:0123456789abcdef",
        conditions=tuple(
            Condition(type=kind, status=status, reason="Reason", last_transition=stamp)
            for status in ConditionStatus
            for kind in ConditionType
        ),
        message="message",
        updated_at=stamp,
        cert_not_after=stamp,
        issuer="issuer",
        verified_at=stamp,
        written_index=1,
    )
    return _items_json(sample)


class RecordPacker:
    """Packs records to deflated strings and back, with the most recent ones kept parsed."""

    def __init__(self, recent: int = RECENT) -> None:
        self.recent = recent
        self._parsed: Recent[bytes, MeshStatus] = Recent(recent, lambda _packed, _record: None)
        # the same records by object: the entry holds the object, so its id is not reused
        self._strings: Recent[int, tuple[MeshStatus, bytes]] = Recent(recent, lambda _i, _r: None)
        self.parses = 0  # strings parsed because they were not recent (tests, measurements)
        self.packs = 0  # records packed because they were not recent (tests, measurements)
        dictionary = _dictionary()
        # Primed once and copied per value (loading a dictionary costs more than a record);
        # raw deflate with a 4 kB window and small tables, which a record and the dictionary
        # fit: the copy of a default 32 kB-window stream cost more than the compression.
        self._deflate: Any = zlib.compressobj(6, zlib.DEFLATED, WBITS, 4, zdict=dictionary)
        self._inflate: Any = zlib.decompressobj(WBITS, zdict=dictionary)

    def pack(self, record: MeshStatus, items: Mapping[str, str] | None = None) -> bytes:
        """The record as deflated compact JSON of its Items (what Nomad stores of it); pass
        ``items`` (its ``to_items()``) when they are at hand, so they are not made again."""
        held = self._strings.get(id(record))
        if held is not None and held[0] is record:
            self._parsed.put(held[1], record)
            return held[1]
        self.packs += 1
        deflate = self._deflate.copy()
        packed = bytes(deflate.compress(_items_json(record, items)) + deflate.flush())
        self._remember(packed, record)
        return packed

    def unpack(self, packed: bytes) -> MeshStatus:
        """The record of a packed string: the recent parsed object, else parsed now."""
        record = self._parsed.get(packed)
        if record is None:
            self.parses += 1
            inflate = self._inflate.copy()
            items = jsonwire.loads(inflate.decompress(packed) + inflate.flush())
            record = MeshStatus.from_items(items)
        self._remember(packed, record)
        return record

    def _remember(self, packed: bytes, record: MeshStatus) -> None:
        self._parsed.put(packed, record)
        self._strings.put(id(record), (record, packed))


PACKER = RecordPacker()
"""One table per process: slots of every store share it (a test's two controllers too, which
is harmless: equal strings, equal frozen records)."""
