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

from devstack.nomad.codec import now_ns, parse_rfc3339, rfc3339
from devstack.nomad.health import HealthWatch
from devstack.nomad.hooks import AllocHooks, ServiceChecks, TaskDriver
from devstack.nomad.identity import NomadApi, VaultClientConfig
from devstack.nomad.nodes import Node
from devstack.nomad.nsd import NativeServices
from devstack.nomad.reschedule import eligible as reschedule_eligible
from devstack.nomad.runner import AllocRunner
from devstack.nomad.scheduler import new_eval
from devstack.nomad.state import NomadState
from devstack.nomad.taskstate import append_event, client_status, task_event
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
        vault: VaultClientConfig,
        on_health: Callable[[str], None],
        api: NomadApi | None = None,
        checks: ServiceChecks | None = None,
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
        self.checks = checks
        # Nomad-native services and checks live in the twin itself (no hook: Nomad's own).
        self.native = NativeServices(state, {n.id: n.datacenter for n in nodes})
        self.runners: dict[str, AllocRunner] = {}
        self._dirty: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._health_watches: dict[str, asyncio.Task[None]] = {}
        self._reported_running: set[str] = set()
        self._reported_stopped: set[str] = set()
        self._health: dict[str, tuple[bool, int]] = {}  # alloc ID -> (healthy, time ns)
        self._hook_tail: dict[str, asyncio.Task[None]] = {}  # alloc ID -> its latest hook call
        # Node.UpdateAlloc's evals go to the broker; the server wires the scheduler in.
        self.enqueue_eval: Callable[[str], None] | None = None

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
        self.native.start_checks(alloc)  # checks_hook.go Prerun: before any task starts
        runner.start()
        if HealthWatch.wanted(alloc):
            self._watch_health(runner)

    def alloc_updated(self, alloc_id: str) -> None:
        """The server changed the alloc (in-place update or desired stop)."""
        runner = self.runners.get(alloc_id)
        alloc = self.state.allocs[alloc_id]
        if runner is None:
            return
        runner.alloc = alloc
        if alloc["DesiredStatus"] in ("stop", "evict"):
            self._spawn(runner.kill())
        elif alloc_id in self._reported_running and not runner.killing:
            self.native.update_alloc(alloc)  # nsd.go UpdateWorkload, checks_hook.go Update

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
        evals: list[str] = []
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
                health = self._health.pop(aid, None)
                if health is not None and alloc.get("DeploymentID"):
                    # allocHealthSetter.SetHealth: Healthy + Timestamp from the client; Canary
                    # and ModifyIndex are the server's (state_store updateDeploymentWithAlloc).
                    before = (stored.get("DeploymentStatus") or {}).get("Healthy")
                    alloc["DeploymentStatus"] = {
                        "Healthy": health[0],
                        "Timestamp": rfc3339(health[1]),
                        "Canary": bool((stored.get("DeploymentStatus") or {}).get("Canary")),
                        "ModifyIndex": tx.index,
                    }
                    if self.count_health(tx, alloc, before, health[0], health[1]):
                        health_changed.add(alloc["DeploymentID"])
                tx.put_alloc(alloc)
                runner.alloc = alloc
                if status == "failed" and stored["ClientStatus"] != "failed":
                    ev = self._failure_eval(tx, alloc)
                    if ev is not None:
                        evals.append(ev)
                if status == "running" and aid not in self._reported_running:
                    self._reported_running.add(aid)
                    became_running.append(aid)
                if status in TERMINAL_CLIENT and aid not in self._reported_stopped:
                    self._reported_stopped.add(aid)
                    stopped.append(aid)
                    self._release(alloc)
        for aid in became_running:
            if not self.runners[aid].killing:  # already deregistered by its pre-kill hook
                self.native.register_alloc(self.state.allocs[aid])
                self._call_hook("on_alloc_running", aid)
        for aid in stopped:
            self.native.purge_checks(aid)
            self.native.deregister_all(aid)
            self._call_hook("on_alloc_stopped", aid)
        for dep in health_changed:
            self.on_health(dep)
        for eval_id in evals:
            if self.enqueue_eval is not None:
                self.enqueue_eval(eval_id)

    def _failure_eval(self, tx: Any, alloc: dict[str, Any]) -> str | None:
        """node_endpoint.go ``UpdateAlloc``: a failed alloc without a follow-up eval whose
        group may still reschedule it (the current job's policy) gets an ``alloc-failure``
        eval, written with the allocation update (``batchUpdate``), one per job per batch."""
        if alloc.get("FollowupEvalID"):
            return None
        job = self.state.jobs.get((alloc["Namespace"], alloc["JobID"]))
        if job is None:
            return None
        group = next((g for g in job["TaskGroups"] if g["Name"] == alloc["TaskGroup"]), None)
        if group is None or not reschedule_eligible(alloc, group.get("ReschedulePolicy"), now_ns()):
            return None
        for eid in tx.evals:
            ev = self.state.evals[eid]
            if (ev["Namespace"], ev["JobID"]) == (job["Namespace"], job["ID"]):
                return None
        ev = new_eval(job, "alloc-failure", tx.index, JobModifyIndex=0)
        tx.put_eval(ev)
        return str(ev["ID"])

    def count_health(
        self, tx: Any, alloc: dict[str, Any], before: bool | None, healthy: bool, at: int
    ) -> bool:
        """state_store.go updateDeploymentWithAlloc: health counters and RequireProgressBy."""
        dep = self.state.deployments.get(alloc["DeploymentID"])
        if dep is None or alloc["TaskGroup"] not in dep["TaskGroups"]:
            return False
        d_healthy = d_unhealthy = 0
        if before is None:
            d_healthy, d_unhealthy = (1, 0) if healthy else (0, 1)
        elif before and not healthy:
            d_healthy, d_unhealthy = -1, 1
        if not (d_healthy or d_unhealthy):
            return False
        groups = copy.deepcopy(dep["TaskGroups"])
        row = groups[alloc["TaskGroup"]]
        row["HealthyAllocs"] += d_healthy
        row["UnhealthyAllocs"] += d_unhealthy
        pd = row.get("ProgressDeadline") or 0
        if pd and d_healthy > 0:
            by = at + pd
            if row.get("RequireProgressBy") is None or by > parse_rfc3339(row["RequireProgressBy"]):
                row["RequireProgressBy"] = rfc3339(by)
        tx.put_deployment(
            {
                **dep,
                "TaskGroups": groups,
                "ModifyIndex": tx.index,
                "ModifyTime": alloc["ModifyTime"],
            }
        )
        return True

    def _watch_health(self, runner: AllocRunner) -> None:
        """health_hook.go: one watch per allocation of a deployment (not for manual health)."""
        aid = runner.alloc["ID"]

        def report(healthy: bool, events: dict[str, tuple[str, str]]) -> None:
            self._health_watches.pop(aid, None)
            if not healthy and runner.alloc.get("DesiredStatus") == "run":
                for task, (type_, message) in events.items():
                    append_event(runner.task_states[task], task_event(type_, message))
            self._health[aid] = (healthy, now_ns())
            self._changed(runner)

        watch = HealthWatch(
            runner.alloc,
            lambda: runner.task_states,
            lambda: self.state.allocs.get(aid) or runner.alloc,
            self.checks,
            report,
            lambda: self.native.alloc_results(aid),
        )
        self._health_watches[aid] = asyncio.get_running_loop().create_task(watch.run())

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
        alloc = self.state.allocs.get(runner.alloc["ID"]) or runner.alloc
        self.native.deregister(alloc, task)
        if task is None:
            self.native.purge_checks(alloc["ID"])  # checks_hook.go PreKill
        call = self._call_hook("on_alloc_stopping", runner.alloc["ID"], task)
        if call is not None:
            await asyncio.wait([call], timeout=PRE_KILL_WAIT)

    def runner(self, alloc_id: str) -> AllocRunner | None:
        return self.runners.get(alloc_id)

    async def close(self) -> None:
        for watch in self._health_watches.values():
            watch.cancel()
        await self.native.close()
        await asyncio.gather(*(r.close() for r in self.runners.values()), return_exceptions=True)
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
