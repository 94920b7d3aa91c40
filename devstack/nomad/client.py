"""The simulated Nomad clients: run placed allocations and report back in batches.

Like a Nomad client, runners change task states locally and the client syncs dirty
allocations to the server in one ``AllocationUpdated`` transaction per batch. The client
also decides deployment health (all tasks running for the group's MinHealthyTime), calls
the alloc hooks when an allocation becomes running, before its runner kills anything (the
services' deregistration) and when it has stopped, one call at a time per allocation, and
tells the scheduler's deployment watcher when health changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devstack.nomad.codec import NS, now_ns, rfc3339
from devstack.nomad.hooks import AllocHooks, TaskDriver
from devstack.nomad.identity import NomadApi
from devstack.nomad.nodes import Node
from devstack.nomad.runner import AllocRunner
from devstack.nomad.state import NomadState
from devstack.nomad.taskstate import client_status
from devstack.nomad.wire import TERMINAL_CLIENT

log = logging.getLogger(__name__)
SYNC_INTERVAL = 0.02
PRE_KILL_WAIT = 5.0  # Nomad queues the deregistration; a stuck Consul must not block the kill


class Client:
    def __init__(
        self,
        state: NomadState,
        nodes: list[Node],
        drivers: Mapping[str, TaskDriver],
        default_driver: TaskDriver,
        alloc_root: Path,
        hooks: AllocHooks | None,
        vault: tuple[str | None, str | None],
        on_health: Callable[[str], None],
        api: NomadApi | None = None,
    ) -> None:
        self.state = state
        self.nodes = {n.id: n for n in nodes}
        self.drivers = drivers
        self.default_driver = default_driver
        self.alloc_root = alloc_root
        self.hooks = hooks
        self.vault = vault
        self.on_health = on_health
        self.api = api
        self.runners: dict[str, AllocRunner] = {}
        self._dirty: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._health_timers: dict[str, asyncio.TimerHandle] = {}
        self._reported_running: set[str] = set()
        self._reported_stopped: set[str] = set()
        self._health: dict[str, bool] = {}
        self._hook_tail: dict[str, asyncio.Task[None]] = {}  # alloc ID -> its latest hook call

    def alloc_placed(self, alloc_id: str) -> None:
        alloc = self.state.allocs[alloc_id]
        runner = AllocRunner(
            alloc,
            self.nodes[alloc["NodeID"]],
            self.drivers,
            self.default_driver,
            self.alloc_root,
            self._changed,
            self.vault,
            self.api,
        )
        self.runners[alloc_id] = runner
        runner.pre_kill = self._pre_kill
        runner.start()

    def alloc_updated(self, alloc_id: str) -> None:
        """The server changed the alloc (in-place update or desired stop)."""
        runner = self.runners.get(alloc_id)
        alloc = self.state.allocs[alloc_id]
        if runner is None:
            return
        runner.alloc = alloc
        if alloc["DesiredStatus"] in ("stop", "evict"):
            self._spawn(runner.kill())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _changed(self, runner: AllocRunner) -> None:
        self._dirty.add(runner.alloc["ID"])
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(SYNC_INTERVAL, self.sync)

    def sync(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, set()
        became_running: list[str] = []
        stopped: list[str] = []
        health_changed: set[str] = set()
        with self.state.txn("AllocationUpdated") as tx:
            for aid in sorted(dirty):
                stored = self.state.allocs.get(aid)
                runner = self.runners.get(aid)
                if stored is None or runner is None:
                    continue
                status, desc = client_status(runner.task_states)
                alloc = {
                    **stored,
                    "TaskStates": copy.deepcopy(runner.task_states),
                    "ClientStatus": status,
                    "ClientDescription": desc,
                    "ModifyIndex": tx.index,
                    "ModifyTime": now_ns(),
                }
                healthy = self._health.pop(aid, None)
                if healthy is not None and alloc.get("DeploymentID"):
                    alloc["DeploymentStatus"] = {
                        "Healthy": healthy,
                        "Timestamp": rfc3339(now_ns()),
                        "Canary": False,
                        "ModifyIndex": tx.index,
                    }
                    self._count_health(tx, alloc, healthy)
                    health_changed.add(alloc["DeploymentID"])
                elif (
                    status == "failed"
                    and alloc.get("DeploymentID")
                    and (alloc.get("DeploymentStatus") or {}).get("Healthy") is None
                ):
                    alloc["DeploymentStatus"] = {
                        "Healthy": False,
                        "Timestamp": rfc3339(now_ns()),
                        "Canary": False,
                        "ModifyIndex": tx.index,
                    }
                    self._count_health(tx, alloc, False)
                    health_changed.add(alloc["DeploymentID"])
                tx.put_alloc(alloc)
                runner.alloc = alloc
                if status == "running" and aid not in self._reported_running:
                    self._reported_running.add(aid)
                    became_running.append(aid)
                    self._arm_health(alloc)
                if status in TERMINAL_CLIENT and aid not in self._reported_stopped:
                    self._reported_stopped.add(aid)
                    stopped.append(aid)
                    self._release(alloc)
        for aid in became_running:
            if not self.runners[aid].killing:  # already deregistered by its pre-kill hook
                self._call_hook("on_alloc_running", aid)
        for aid in stopped:
            self._call_hook("on_alloc_stopped", aid)
        for dep in health_changed:
            self.on_health(dep)

    def _count_health(self, tx: Any, alloc: dict[str, Any], healthy: bool) -> None:
        dep = self.state.deployments.get(alloc["DeploymentID"])
        if dep is None:
            return
        groups = copy.deepcopy(dep["TaskGroups"])
        row = groups.get(alloc["TaskGroup"])
        if row is None:
            return
        row["HealthyAllocs" if healthy else "UnhealthyAllocs"] += 1
        tx.put_deployment(
            {**dep, "TaskGroups": groups, "ModifyIndex": tx.index, "ModifyTime": now_ns()}
        )

    def _arm_health(self, alloc: dict[str, Any]) -> None:
        if not alloc.get("DeploymentID"):
            return
        group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        wait = ((group.get("Update") or {}).get("MinHealthyTime") or 0) / NS
        aid = alloc["ID"]
        self._health_timers[aid] = asyncio.get_running_loop().call_later(
            wait, self._health_check, aid
        )

    def _health_check(self, aid: str) -> None:
        self._health_timers.pop(aid, None)
        runner = self.runners.get(aid)
        if runner is None:
            return
        status, _ = client_status(runner.task_states)
        self._health[aid] = status == "running" and runner.main_tasks_running()
        self._changed(runner)

    def _release(self, alloc: dict[str, Any]) -> None:
        node = self.nodes.get(alloc["NodeID"])
        resources = alloc.get("AllocatedResources") or {}
        shared = resources.get("Shared") or {}
        if node is not None:
            node.release([p["Value"] for p in shared.get("Ports") or [] if p.get("Value")])
            # Task-level networks (allocs._task_networks) hold host ports of their own.
            for task in (resources.get("Tasks") or {}).values():
                for net in (task or {}).get("Networks") or []:
                    ports = (net.get("ReservedPorts") or []) + (net.get("DynamicPorts") or [])
                    node.release([p["Value"] for p in ports if p.get("Value")])

    def _call_hook(self, name: str, aid: str, *args: Any) -> asyncio.Task[None] | None:
        """Run a hook after the allocation's previous hook call (register before deregister)."""
        if self.hooks is None:
            return None
        alloc = copy.deepcopy(self.state.allocs[aid])
        before = self._hook_tail.get(aid)

        async def call() -> None:
            if before is not None:
                await asyncio.wait([before])
            try:
                await getattr(self.hooks, name)(alloc, *args)
            except Exception:
                log.exception("alloc hook %s failed for %s", name, aid)

        task = asyncio.get_running_loop().create_task(call())
        self._hook_tail[aid] = task
        self._background.add(task)

        def done(_: asyncio.Task[None]) -> None:
            self._background.discard(task)
            if self._hook_tail.get(aid) is task:
                del self._hook_tail[aid]

        task.add_done_callback(done)
        return task

    async def _pre_kill(self, runner: AllocRunner, task: str | None) -> None:
        """Deregister the group's or a task's services before the runner kills anything."""
        call = self._call_hook("on_alloc_stopping", runner.alloc["ID"], task)
        if call is not None:
            await asyncio.wait([call], timeout=PRE_KILL_WAIT)

    def runner(self, alloc_id: str) -> AllocRunner | None:
        return self.runners.get(alloc_id)

    async def close(self) -> None:
        for timer in self._health_timers.values():
            timer.cancel()
        await asyncio.gather(*(r.close() for r in self.runners.values()), return_exceptions=True)
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
