"""Stored status records kept as one compact string each, parsed again when read.

The store keeps every job's stored record for as long as the process runs. As a MeshStatus it
costs ~8.7 kB (a pydantic object per condition, each with its own dict, set and strings); as
the JSON of its Variable Items it costs ~1.3 kB. At 10,000 jobs that is the difference between
~85 MB and ~13 MB of a 120 MB budget (DESIGN §10), so a slot keeps the string.

Parsing costs CPU (json + pydantic validation), and the same records are read in bursts (a
reconcile of the mesh, then health, then certs, of the same job): a bounded table of recently
packed or parsed records answers those reads without parsing. Records are frozen, and equal
strings hold equal content, so one parsed object can serve every reader of that string.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from crds_equivalent.status import MeshStatus

RECENT = 128  # parsed records kept; ~8.7 kB each: ~1.1 MB whatever the number of jobs. The
# reads that come together (one job's reconciles, its writes in flight) are a few dozen at most
# (12 workers); a miss costs one parse (~37 µs measured), so a bigger table buys little.


class RecordPacker:
    """Packs records to strings and back, with the most recent ones kept parsed."""

    def __init__(self, recent: int = RECENT) -> None:
        self.recent = recent
        self._parsed: OrderedDict[str, MeshStatus] = OrderedDict()
        self.parses = 0  # strings parsed because they were not recent (tests, measurements)

    def pack(self, record: MeshStatus) -> str:
        """The record as compact JSON of its Items (what Nomad stores of it)."""
        packed = json.dumps(record.to_items(), separators=(",", ":"))
        self._keep(packed, record)
        return packed

    def unpack(self, packed: str) -> MeshStatus:
        """The record of a packed string: the recent parsed object, else parsed now."""
        record = self._parsed.get(packed)
        if record is None:
            self.parses += 1
            record = MeshStatus.from_items(json.loads(packed))
        self._keep(packed, record)
        return record

    def _keep(self, packed: str, record: MeshStatus) -> None:
        self._parsed[packed] = record
        self._parsed.move_to_end(packed)
        while len(self._parsed) > self.recent:
            self._parsed.popitem(last=False)


PACKER = RecordPacker()
"""One table per process: slots of every store share it (a test's two controllers too, which
is harmless: equal strings, equal frozen records)."""
