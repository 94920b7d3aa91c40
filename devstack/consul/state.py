"""The Consul twin's state: services and checks, raft-like indexes, and change notification.

Every write takes the next index (like a raft apply), and remembers it per table and per
service name, so a blocking query on `/v1/health/service/web` wakes only when something about
`web` changed, and `X-Consul-Index` means what it means on a real cluster. The check runner
subscribes to check additions and removals; tests read this object directly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Protocol

from devstack.consul.model import CONSUL_VERSION, STATUSES, Check, Node, Service
from devstack.consul.validate import ApiError


class CheckListener(Protocol):
    def check_added(self, check: Check) -> None: ...
    def check_removed(self, check_id: str) -> None: ...


class ConsulState:
    """One dev agent: its node, the services registered with it, and their checks."""

    def __init__(self, *, node_name: str, datacenter: str, address: str) -> None:
        self.index = 0
        self.node = Node(str(uuid.uuid4()), node_name, address, datacenter, 0, 0)
        self.services: dict[str, Service] = {}
        self.checks: dict[str, Check] = {}
        self.nodes_index = self.services_index = self.checks_index = 0
        self._name_index: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._listeners: list[CheckListener] = []
        self.blocked_queries = 0  # blocking reads waiting right now (for tests and debugging)
        self._bootstrap()

    def _bootstrap(self) -> None:
        idx = self._bump()
        self.node.create_index = self.node.modify_index = self.nodes_index = idx
        idx = self._bump()
        self.checks["serfHealth"] = Check(
            check_id="serfHealth",
            name="Serf Health Status",
            status="passing",
            output="Agent alive and reachable",
            create_index=idx,
            modify_index=idx,
            agent_local=False,
        )
        self.checks_index = idx
        idx = self._bump()
        meta = {"non_voter": "false", "raft_version": "3", "read_replica": "false"}
        meta |= {"serf_protocol_current": "2", "serf_protocol_max": "5"}
        meta |= {"serf_protocol_min": "1", "version": CONSUL_VERSION}
        self.services["consul"] = Service(
            id="consul",
            name="consul",
            tags=[],
            address="",
            port=8300,
            meta=meta,
            tagged_addresses={},
            weights={"Passing": 1, "Warning": 1},
            create_index=idx,
            modify_index=idx,
            agent_local=False,
        )
        self.services_index = self._name_index["consul"] = idx

    # -- indexes and notification -------------------------------------------------------------

    def _bump(self) -> int:
        self.index += 1
        return self.index

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def name_index(self, name: str) -> int:
        """The index of the last change to anything named `name` (services table if never)."""
        return max(1, self._name_index.get(name, self.services_index))

    async def wait_changed(self, current: Callable[[], int], min_index: int, wait: float) -> None:
        """Block while current() <= min_index, at most `wait` seconds (a blocking query)."""
        deadline = time.monotonic() + wait
        self.blocked_queries += 1
        try:
            while current() <= min_index:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    return
        finally:
            self.blocked_queries -= 1

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """For tests: return once predicate() holds, re-checked on every state change."""
        async with asyncio.timeout(within):
            while not predicate():
                await self._changed.wait()

    def subscribe(self, listener: CheckListener) -> None:
        self._listeners.append(listener)
        for check in self.checks.values():
            if check.agent_local:
                listener.check_added(check)

    # -- writes -------------------------------------------------------------------------------

    def register(self, svc: Service, checks: list[Check], *, replace_existing_checks: bool) -> None:
        """Agent service registration: add or replace the service, merge or replace checks."""
        old = self.services.get(svc.id)
        if old is not None and not old.agent_local:
            raise ApiError(400, f'Service ID "{svc.id}" is reserved')
        idx = self._bump()
        svc.create_index = old.create_index if old else idx
        svc.modify_index = idx
        self.services[svc.id] = svc
        wanted = {c.check_id for c in checks}
        if replace_existing_checks:
            stale = [c.check_id for c in self.checks.values() if c.service_id == svc.id]
            self._drop_checks(cid for cid in stale if cid not in wanted)
        for check in checks:
            prev = self.checks.get(check.check_id)
            if prev is not None and prev.definition == check.definition:
                check.status, check.output = prev.status, prev.output
                check.create_index = prev.create_index
                check.modify_index = prev.modify_index
                self.checks[check.check_id] = check
                continue
            if prev is not None:
                self._drop_checks([check.check_id])
            check.create_index = check.modify_index = idx
            self.checks[check.check_id] = check
            for listener in self._listeners:
                listener.check_added(check)
        for check in self.checks.values():
            if check.service_id == svc.id:
                check.service_tags = list(svc.tags)
                check.service_name = svc.name
        self.services_index = self.checks_index = idx
        self._name_index[svc.name] = idx
        if old is not None:
            self._name_index[old.name] = idx
        self._notify()

    def deregister(self, service_id: str) -> None:
        svc = self.services.get(service_id)
        if svc is None or not svc.agent_local:
            raise ApiError(
                404,
                f'Unknown service ID "{service_id}". '
                "Ensure that the service ID is passed, not the service name.",
            )
        idx = self._bump()
        del self.services[service_id]
        self._drop_checks([c.check_id for c in self.checks.values() if c.service_id == service_id])
        self.services_index = self.checks_index = self._name_index[svc.name] = idx
        self._notify()

    def add_check(self, check: Check) -> None:
        """Agent check registration (PUT /v1/agent/check/register)."""
        if check.check_id in self.checks:
            self._drop_checks([check.check_id])
        idx = self._bump()
        check.create_index = check.modify_index = idx
        self.checks[check.check_id] = check
        for listener in self._listeners:
            listener.check_added(check)
        self.checks_index = idx
        if check.service_name:
            self._name_index[check.service_name] = idx
        self._notify()

    def remove_check(self, check_id: str) -> None:
        check = self.checks.get(check_id)
        if check is None or not check.agent_local:
            raise ApiError(
                404,
                f'Unknown check ID "{check_id}". '
                "Ensure that the check ID is passed, not the check name.",
            )
        idx = self._bump()
        self._drop_checks([check_id])
        self.checks_index = idx
        if check.service_name:
            self._name_index[check.service_name] = idx
        self._notify()

    def _drop_checks(self, check_ids: Iterable[str]) -> None:
        for cid in list(check_ids):
            if self.checks.pop(cid, None) is not None:
                for listener in self._listeners:
                    listener.check_removed(cid)

    def update_check(self, check_id: str, status: str, output: str) -> None:
        """A check result. A status change is a catalog write (new index); output alone is not."""
        check = self.checks.get(check_id)
        if check is None or status not in STATUSES:
            return
        if check.status == status:
            if check.output != output:
                check.output = output
                self._notify()  # wakes wait_until; blocking queries see no new index
            return
        idx = self._bump()
        check.status, check.output, check.modify_index = status, output, idx
        self.checks_index = idx
        if check.service_name:
            self._name_index[check.service_name] = idx
        self._notify()

    # -- reads --------------------------------------------------------------------------------

    def services_named(self, name: str) -> list[Service]:
        return sorted((s for s in self.services.values() if s.name == name), key=lambda s: s.id)

    def checks_of(self, service_id: str) -> list[Check]:
        return sorted(
            (c for c in self.checks.values() if c.service_id == service_id),
            key=lambda c: c.check_id,
        )

    def node_checks(self) -> list[Check]:
        return sorted(
            (c for c in self.checks.values() if not c.service_id), key=lambda c: c.check_id
        )
