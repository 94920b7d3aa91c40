"""Nomad Variables that count the calls made through them, and can let another writer in.

The status store's tests prove what a piece of work cost (how many GETs, PUTs, LISTs) and what
a CAS race does, against the Nomad twin: the calls still go to the twin; this only counts them
and, when armed, runs ``before_next_put`` just before the next CAS put (another writer getting
in between our read and our write).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from controller.nomad.client import NomadClient
from controller.nomad.variables import NomadVariables, Variable


class CountingVariables(NomadVariables):
    """``calls`` counts ``get``, ``put`` (CAS puts, won or lost), ``delete`` and ``list``."""

    def __init__(self, client: NomadClient, *, namespace: str = "default") -> None:
        super().__init__(client, namespace=namespace)
        self.calls: Counter[str] = Counter()
        self.before_next_put: Callable[[], Awaitable[None]] | None = None

    async def get(self, path: str) -> Variable | None:
        self.calls["get"] += 1
        return await super().get(path)

    async def cas_put(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable | None:
        if self.before_next_put is not None:
            other, self.before_next_put = self.before_next_put, None
            await other()
        self.calls["put"] += 1
        return await super().cas_put(path, items, cas=cas)

    async def cas_delete(self, path: str, *, cas: int) -> bool:
        self.calls["delete"] += 1
        return await super().cas_delete(path, cas=cas)

    async def list_prefix(self, prefix: str = "") -> list[Variable]:
        self.calls["list"] += 1
        return await super().list_prefix(prefix)
