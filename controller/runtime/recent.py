"""A small bounded memory of the most recently touched keys (least recently used goes first).

The job cache (``controller.nomad.cache``) and the status records (``controller.status.packed``)
hold their values packed to stay small at 10,000 jobs, but the work on one job comes in bursts:
a reconcile reads its job and record two or three times, and a rollout's allocation and
deployment events arrive within a second of each other. ``Recent`` keeps the unpacked form of
the last few keys so a burst unpacks and packs once, and hands each key it evicts to ``cool``
(which packs it, or forgets it when it was only a read's copy). Its size is the bound on what
is held twice or unpacked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The values of at most ``size`` keys (0: none, each value is cooled as it is put); the
    least recently touched is given to ``cool``."""

    def __init__(self, size: int, cool: Callable[[K, V], None]) -> None:
        if size < 0:
            raise ValueError("a Recent holds zero or more keys")
        self.size = size
        self.cool = cool
        self._values: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._values))

    def get(self, key: K) -> V | None:
        """The key's value (now the most recent), or None."""
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Hold ``value`` as the most recent; cool the oldest beyond ``size``."""
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            old, held = self._values.popitem(last=False)
            self.cool(old, held)

    def pop(self, key: K) -> V | None:
        """Forget the key without cooling it (its value is no longer wanted)."""
        return self._values.pop(key, None)

    def flush(self) -> None:
        """Cool every key (e.g. before the cache's footprint is measured)."""
        while self._values:
            old, held = self._values.popitem(last=False)
            self.cool(old, held)
