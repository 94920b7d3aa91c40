"""Counts the status Variable calls a Nomad twin serves, by method: a twin middleware.

Status records live under ``mesh-controller/status/``; a test hands ``VarCalls().middleware``
to ``start_nomad_twin(middlewares=...)`` and reads ``calls`` (``"GET"``, ``"PUT"``,
``"DELETE"``, ``"LIST"``) or ``by_path`` to prove how many reads and writes a phase of work
cost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from crds_equivalent.keys import VAR_STATUS_PREFIX

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class VarCalls:
    """Status Variable requests served, by method (a LIST of the status prefix is ``LIST``)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.by_path: Counter[tuple[str, str]] = Counter()  # (method, Variable path)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/var/" + VAR_STATUS_PREFIX + "/"):
            self.calls[request.method] += 1
            self.by_path[(request.method, request.path.removeprefix("/v1/var/"))] += 1
        elif request.path == "/v1/vars" and request.query.get("prefix", "").startswith(
            VAR_STATUS_PREFIX
        ):
            self.calls["LIST"] += 1
        return await handler(request)

    @property
    def writes(self) -> int:
        return self.calls["PUT"] + self.calls["DELETE"]
