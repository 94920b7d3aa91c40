"""The leader lock: a Nomad Variable lock (Nomad >= 1.7) behind the runtime's LeaseLock Protocol.

Nomad holds the lease: ``?lock-acquire`` creates or locks the variable and returns a lock ID,
``?lock-renew`` with that ID extends it, ``?lock-release`` drops it. If the TTL runs out, the
lock stays unacquirable for ``LockDelay`` — the split-brain guard that lets a deposed leader
notice and stop before anyone else starts. The holder's identity goes into the Items so
``controllerctl status`` can say who leads and since when. Nomad returns TTL and LockDelay as Go
duration strings ("15s", "1m0s"), unlike every other duration in its API.

The Variable's path is the caller's (``crds_equivalent.keys.VAR_LEADER`` for the controller):
the adapter knows how Nomad locks work, not which lock the mesh controller uses.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import structlog

from controller.nomad.client import NomadClient
from controller.nomad.errors import Conflict, NomadError, NotFound
from controller.nomad.variables import Variable, var_url
from controller.runtime.clock import Clock, SystemClock
from crds_equivalent.goparse import format_go_duration, parse_go_duration

log = structlog.get_logger(__name__)


class NomadVariableLock:
    """LeaseLock over ``PUT /v1/var/<path>?lock-acquire|lock-renew|lock-release``."""

    def __init__(
        self,
        client: NomadClient,
        *,
        path: str,
        namespace: str = "default",
        ttl: float = 15.0,
        lock_delay: float = 15.0,
        identity: str | None = None,
        version: str = "",
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.namespace = namespace
        self.ttl = ttl
        self.lock_delay = lock_delay
        self._identity = identity or f"{socket.gethostname()}/{os.getpid()}"
        self.version = version
        self.clock: Clock = clock or SystemClock()
        self.lock_id: str | None = None
        self.granted_ttl: float | None = None

    @property
    def identity(self) -> str:
        return self._identity

    def _holder_items(self) -> dict[str, str]:
        return {
            "identity": self._identity,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "version": self.version,
            "since": self.clock.now().isoformat(),
            # set by Nomad in every task: lets `controllerctl install` tell which allocation
            # (and so which job version) leads before and after an upgrade
            "alloc": os.environ.get("NOMAD_ALLOC_ID", ""),
        }

    async def _op(self, op: str, body: Mapping[str, Any]) -> Variable:
        resp = await self.client.request(
            "PUT",
            var_url(self.path),
            params=[(op, "")],
            body={"Namespace": self.namespace, "Path": self.path, **body},
            namespace=self.namespace,
            idempotent=False,
        )
        return Variable.from_wire(resp.body or {})

    async def acquire(self) -> bool:
        """True when we hold the lock (now or already); False when someone else does."""
        if self.lock_id is not None and await self.renew():
            return True
        lock = {
            "TTL": format_go_duration(self.ttl),
            "LockDelay": format_go_duration(self.lock_delay),
        }
        try:
            var = await self._op("lock-acquire", {"Items": self._holder_items(), "Lock": lock})
        except Conflict:
            return False
        if not var.lock_id:
            raise NomadError(f"lock-acquire on {self.path} returned no lock ID")
        self.lock_id = var.lock_id
        ttl = (var.lock or {}).get("TTL")
        self.granted_ttl = parse_go_duration(ttl) if ttl else None
        log.info("leader lock acquired", path=self.path, identity=self._identity, ttl=ttl)
        return True

    async def renew(self) -> bool:
        """True when the lease was extended; False when the lock is no longer ours."""
        if self.lock_id is None:
            return False
        try:
            await self._op("lock-renew", {"Lock": {"ID": self.lock_id}})
        except (Conflict, NotFound) as exc:
            log.warning("leader lock lost", path=self.path, reason=str(exc))
            self.lock_id = None
            return False
        return True

    async def release(self) -> None:
        """Best effort: a lock that is already gone is fine (we are exiting anyway)."""
        lock_id, self.lock_id = self.lock_id, None
        if lock_id is None:
            return
        try:
            await self._op("lock-release", {"Lock": {"ID": lock_id}})
        except NomadError as exc:
            log.warning("leader lock release failed", path=self.path, error=str(exc))

    async def holder(self) -> dict[str, str] | None:
        """The holder's Items (identity, host, pid, version, since, alloc), or None when unheld."""
        try:
            resp = await self.client.request("GET", var_url(self.path), namespace=self.namespace)
        except NotFound:
            return None
        var = Variable.from_wire(resp.body or {})
        return dict(var.items) if var.items else None
