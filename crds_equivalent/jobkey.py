"""JobKey: the one name for "this job" — (namespace, job ID) — across the controller.

Work queues, the event source, the status store, rotation waves and the operator commands all
key by it. A NamedTuple, so it still equals and hashes like the plain ``(namespace, job)`` tuple
that Nomad's wire, status Variable paths and older callers use, and prints as ``default/web`` in
the canonical log line.
"""

from __future__ import annotations

import sys
from typing import NamedTuple


class JobKey(NamedTuple):
    """Look at this job: its namespace and ID, as Nomad spells them."""

    namespace: str
    job_id: str

    @classmethod
    def of(cls, namespace: str, job_id: str) -> JobKey:
        """The key with its two names interned: keys of one job are built apart from many
        decoded documents (an event's payload, a LIST stub, a record path), and a dozen tables
        hold them for as long as the job lives; interned, they share one copy of each name
        instead of one per decode."""
        # str(): sys.intern takes only exact strings, and a str subclass must not crash a read
        return cls(sys.intern(str(namespace)), sys.intern(str(job_id)))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.job_id}"
