"""Which keys have a condition standing, and for what reason: log a condition once, not per pass.

A reconciler that finds the same problem on every pass (no Consul configured, a catalog that
does not answer) would write the same warning every pass, for every job: at a cold start of 1k
jobs without Consul that was two warnings per job, a quarter of the controller's log lines,
each a full pass of the log pipeline, and none of them news after the first. ``Standing``
remembers the reason last reported per key, so the caller warns when a condition starts or its
reason changes and logs the repeats at debug.

What it holds is bounded: one entry per key whose condition stands *now*; the caller ends it
when the condition clears or the key goes away. Past ``limit`` entries a new key is not
remembered and every pass of it counts as news: the old behaviour (a warning each pass), never
silence.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Standing(Generic[K]):
    """The reason of each key's standing condition, at most ``limit`` keys."""

    def __init__(self, limit: int = 100_000) -> None:
        if limit < 0:
            raise ValueError("a Standing holds zero or more keys")
        self.limit = limit
        self._reasons: dict[K, str] = {}

    def news(self, key: K, reason: str) -> bool:
        """Record that ``key``'s condition stands for ``reason``; True when that was not known
        (it starts, or its reason changed, or ``key`` could not be remembered)."""
        known = self._reasons.get(key)
        if known == reason:
            return False
        if known is not None or len(self._reasons) < self.limit:
            self._reasons[key] = reason
        return True

    def end(self, key: K) -> None:
        """``key``'s condition cleared, or ``key`` is gone: a later one is news again."""
        self._reasons.pop(key, None)

    def __len__(self) -> int:
        return len(self._reasons)
