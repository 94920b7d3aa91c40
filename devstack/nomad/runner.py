"""One allocation on a simulated client: task life cycle, restarts, kills.

Order follows Nomad's lifecycle: prestart tasks first (sidecars must be running,
ephemeral ones must have exited successfully), then main tasks, then poststart. A stop runs
like Nomad's killTasks: the pre-kill hook deregisters the group's services, the group's
ShutdownDelay passes, then the non-sidecar tasks are killed before the sidecars, each one
after its Killing event, its own services' deregistration and its own ShutdownDelay ("Waiting
for shutdown delay", the task back in pending); then poststop tasks run. Exits go through the
restart policy (Attempts within Interval, Delay, Mode fail|delay). Every change is written
into ``task_states`` and reported through ``on_change``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from devstack.godur import format_ns
from devstack.nomad.codec import NS, now_ns, rfc3339
from devstack.nomad.hooks import TaskDriver
from devstack.nomad.identity import NomadApi, VaultClientConfig
from devstack.nomad.shutdown import (
    ShutdownDelays,
    group_delay,
    group_of,
    task_delay,
    waiting_message,
)
from devstack.nomad.taskctx import TaskContext
from devstack.nomad.taskenv import task_env
from devstack.nomad.taskstate import append_event, new_task_state, set_state, task_event

log = logging.getLogger(__name__)


def _hook(task: dict[str, Any]) -> tuple[str, bool]:
    life = task.get("Lifecycle") or {}
    return life.get("Hook") or "", bool(life.get("Sidecar"))


class AllocRunner:
    def __init__(
        self,
        alloc: dict[str, Any],
        node: Any,
        drivers: Mapping[str, TaskDriver],
        default_driver: TaskDriver,
        alloc_root: Path,
        on_change: Callable[[AllocRunner], None],
        vault: VaultClientConfig | None = None,
        api: NomadApi | None = None,
    ) -> None:
        self.alloc = alloc
        self.node = node
        self.drivers = drivers
        self.default_driver = default_driver
        self.alloc_dir = alloc_root / alloc["ID"]
        self.on_change = on_change
        self.vault = vault or VaultClientConfig()
        self.api = api
        group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        self.tasks: dict[str, dict[str, Any]] = {t["Name"]: t for t in group["Tasks"] or []}
        self.task_states: dict[str, dict[str, Any]] = {n: new_task_state() for n in self.tasks}
        self.ctxs: dict[str, TaskContext] = {}
        self._running = {n: asyncio.Event() for n in self.tasks}
        self._done = {n: asyncio.Event() for n in self.tasks}
        self._restart_times: dict[str, list[float]] = {n: [] for n in self.tasks}
        self._killing = False
        self._killed = asyncio.Event()
        self._agent_shutdown = False  # the twin is closing: no pre-kill hooks, no delays
        self._delays = ShutdownDelays(self.tasks)
        # Deregisters the group's (None) or a task's services before the kill (Client wires it).
        self.pre_kill: Callable[[AllocRunner, str | None], Awaitable[None]] | None = None
        self._poststop: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.main: asyncio.Task[None] | None = None

    # ---- reporting --------------------------------------------------------------
    def emit(self, name: str, type_: str, message: str = "", **fields: Any) -> None:
        append_event(self.task_states[name], task_event(type_, message, **fields))
        self.on_change(self)

    def set_state(self, name: str, state: str, failed: bool = False) -> None:
        set_state(self.task_states[name], state, failed)
        if state == "running":
            self._running[name].set()
        if state == "dead":
            self._done[name].set()
            self._running[name].set()
        self.on_change(self)

    def driver(self, task: dict[str, Any]) -> TaskDriver:
        return self.drivers.get(task["Driver"], self.default_driver)

    def _ctx(self, name: str) -> TaskContext:
        if name not in self.ctxs:
            task = self.tasks[name]
            self.ctxs[name] = TaskContext(
                alloc_id=self.alloc["ID"],
                task_name=name,
                node_id=self.node.id,
                node_name=self.node.name,
                node_address=self.node.address,
                alloc_dir=self.alloc_dir,
                task_dir=self.alloc_dir / name,
                env=task_env(self.alloc, task, self.alloc_dir, self.node.datacenter),
                vault_addr=self.vault.addr,
                vault_auth_path=self.vault.jwt_auth_backend_path,
                vault_client_role=self.vault.create_from_role,
                nomad_addr=self.api.addr if self.api else None,
                nomad_token=self.api.identities.mint(self.alloc, name) if self.api else None,
                _sign_identity=self._identity_signer(name),
                nomad_namespace=str(self.alloc.get("Namespace") or "default"),
                _emit=self.emit,
                _set_state=self.set_state,
                _exited=self._exited,
                _restart=self.restart_task,
                _fail=self.fail_task,
            )
        return self.ctxs[name]

    def _identity_signer(self, name: str) -> Callable[[str], str | None]:
        """widmgr.Get for this task: a freshly signed JWT of one of its identities (the
        server signs on request, so a renewal is another call), None if it has none such."""

        def sign(identity: str) -> str | None:
            if self.api is None:
                return None
            task = self.tasks[name]
            if identity == "default":
                return self.api.identities.sign(self.alloc, task, task.get("Identity"))
            for wid in task.get("Identities") or []:
                if wid.get("Name") == identity:
                    return self.api.identities.sign(self.alloc, task, wid)
            return None

        return sign

    # ---- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        self.main = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        for name in self.tasks:
            self.emit(name, "Received")
        for name in self.tasks:
            (self.alloc_dir / "alloc").mkdir(parents=True, exist_ok=True)
            for sub in ("local", "secrets", "tmp"):
                (self.alloc_dir / name / sub).mkdir(parents=True, exist_ok=True)
            (self.alloc_dir / name / "secrets").chmod(0o700)
            self.emit(name, "Task Setup", "Building Task Directory")
        phases = [
            [n for n, t in self.tasks.items() if _hook(t)[0] == "prestart"],
            [n for n, t in self.tasks.items() if _hook(t)[0] == ""],
            [n for n, t in self.tasks.items() if _hook(t)[0] == "poststart"],
        ]
        for phase in phases:
            if self._killing:
                return
            for name in phase:
                self._spawn(self._start_task(name))
            for name in phase:
                await self._ready(name)
            failed = [n for n in self.tasks if self.task_states[n]["Failed"]]
            if failed:
                await self.kill(reason_failed=True, failed_sibling=failed[0])
                return

    async def _ready(self, name: str) -> None:
        ephemeral = _hook(self.tasks[name])[0] in ("prestart",) and not _hook(self.tasks[name])[1]
        await (self._done if ephemeral else self._running)[name].wait()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_task(self, name: str) -> None:
        task = self.tasks[name]
        try:
            await self.driver(task).start(self.alloc, task, self._ctx(name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.emit(name, "Driver Failure", str(exc), DriverError=str(exc))
            await self._after_exit(name, 1, 0)
            return
        st = self.task_states[name]
        if st["State"] == "pending" and (not self._killing or name in self._poststop):
            self.set_state(name, "running")
            self.emit(name, "Started")

    def _exited(self, name: str, exit_code: int, signal: int, message: str = "") -> None:
        self._spawn(self._on_exit(name, exit_code, signal, message))

    async def _on_exit(self, name: str, exit_code: int, signal: int, message: str) -> None:
        if self._stopping(name):
            self._delays.task_exited(name)  # ends its shutdown delay early, as in Nomad
            return
        if self.task_states[name]["State"] == "dead":
            return
        self.emit(name, "Terminated", message, ExitCode=exit_code, Signal=signal)
        await self._after_exit(name, exit_code, signal)

    async def _after_exit(self, name: str, exit_code: int, signal: int) -> None:
        task = self.tasks[name]
        hook, sidecar = _hook(task)
        batch = self.alloc["Job"]["Type"] in ("batch", "sysbatch")
        if exit_code == 0 and signal == 0 and ((hook and not sidecar) or batch):
            self.set_state(name, "dead")
            self._check_main_dead()
            return
        policy = task.get("RestartPolicy") or {}
        now = time.monotonic()
        window = policy.get("Interval", 0) / NS
        recent = [t for t in self._restart_times[name] if now - t < window]
        self._restart_times[name] = recent
        attempts = int(policy.get("Attempts", 0))
        # restarts.go RestartTracker.GetState: no attempts -> "Policy allows no restarts";
        # attempts used up in the interval with mode fail -> the "Exceeded ..." text.
        reason = ""
        if attempts == 0:
            reason = "Policy allows no restarts"
        elif len(recent) >= attempts and policy.get("Mode", "fail") == "fail":
            reason = (
                f"Exceeded allowed attempts {attempts} in interval "
                f'{format_ns(int(policy.get("Interval", 0)))} and mode is "fail"'
            )
        if reason:
            self.emit(name, "Not Restarting", RestartReason=reason, FailsTask=True)
            self.set_state(name, "dead", failed=True)
            await self.kill(reason_failed=True, failed_sibling=name)
            return
        delay = policy.get("Delay", 0) / NS
        self._restart_times[name].append(now)
        # TaskEvent.PopulateEventDisplayMessage: "Task restarting in <Duration>".
        self.emit(
            name,
            "Restarting",
            f"Task restarting in {format_ns(int(policy.get('Delay', 0)))}",
            StartDelay=int(delay * NS),
            RestartReason="Restart within policy",
        )
        await asyncio.sleep(delay)
        if self._stopping(name):
            return
        st = self.task_states[name]
        st["Restarts"] += 1
        st["LastRestart"] = rfc3339(now_ns())
        st["State"] = "pending"
        await self._start_task(name)

    def _check_main_dead(self) -> None:
        mains = [n for n, t in self.tasks.items() if not _hook(t)[0]]
        if mains and all(self.task_states[n]["State"] == "dead" for n in mains):
            self._spawn(self.kill(main_dead=True))

    async def kill(
        self, *, reason_failed: bool = False, failed_sibling: str = "", main_dead: bool = False
    ) -> None:
        if self._killing:
            return
        self._killing = True
        try:
            if not self._agent_shutdown:
                await self._deregister(None)
                await self._delays.wait(group_delay(self.alloc))  # Nomad only logs this one
            await self._kill_tasks(failed_sibling, main_dead)
        finally:
            self._killed.set()

    async def _kill_tasks(self, failed_sibling: str, main_dead: bool) -> None:
        first = [n for n, t in self.tasks.items() if not _hook(t)[1] and _hook(t)[0] != "poststop"]
        sidecars = [n for n, t in self.tasks.items() if _hook(t)[1]]
        for group in (first, sidecars):
            await asyncio.gather(*(self._kill_task(n, failed_sibling, main_dead) for n in group))
        poststop = [n for n, t in self.tasks.items() if _hook(t)[0] == "poststop"]
        self._poststop.update(poststop)
        for name in poststop:
            if self.task_states[name]["State"] == "pending":
                self._spawn(self._start_task(name))
        for name in poststop:
            await self._done[name].wait()

    @property
    def killing(self) -> bool:
        return self._killing

    async def _deregister(self, task: str | None) -> None:
        owner = group_of(self.alloc) if task is None else self.tasks[task]
        if self.pre_kill is not None and owner.get("Services"):
            await self.pre_kill(self, task)

    def _stopping(self, name: str) -> bool:
        """The alloc is being killed and this task is not one of the poststop tasks it runs."""
        return self._killing and name not in self._poststop

    async def _kill_task(self, name: str, failed_sibling: str, main_dead: bool) -> None:
        st = self.task_states[name]
        task = self.tasks[name]
        if st["State"] == "dead" or (st["State"] == "pending" and not self._running[name].is_set()):
            # Let the driver drop what it holds (a start blocked on templates, watchers).
            try:
                await self.driver(task).stop(self.alloc, task, self._ctx(name))
            except Exception as exc:
                log.warning("driver cleanup failed for %s/%s: %s", self.alloc["ID"], name, exc)
        if st["State"] == "dead":
            return
        if st["State"] == "pending" and not self._running[name].is_set():
            if failed_sibling and name != failed_sibling:
                self.emit(name, "Sibling Task Failed", FailedSibling=failed_sibling, FailsTask=True)
            self.set_state(name, "dead", failed=bool(failed_sibling))
            return
        if failed_sibling and name != failed_sibling:
            self.emit(name, "Sibling Task Failed", FailedSibling=failed_sibling)
        elif main_dead:
            self.emit(name, "Main Tasks Dead")
        self.emit(name, "Killing", KillTimeout=task.get("KillTimeout", 5 * NS))
        if not self._agent_shutdown:
            await self._deregister(name)
            if delay := task_delay(task):
                self.emit(name, "Waiting for shutdown delay", waiting_message(delay))
                self.set_state(name, "pending")
                await self._delays.wait(delay, name)
        try:
            await self.driver(task).stop(self.alloc, task, self._ctx(name))
        except Exception as exc:
            log.warning("driver stop failed for %s/%s: %s", self.alloc["ID"], name, exc)
        self.emit(name, "Killed")
        self.set_state(name, "dead")

    async def close(self) -> None:
        """Twin shutdown: stop what runs, then cancel our own tasks.

        A Nomad agent that shuts down leaves its tasks running and its services registered;
        the twin stops the tasks so nothing outlives it, but skips the pre-kill hooks and the
        shutdown delays, which belong to an allocation being stopped."""
        self._agent_shutdown = True
        self._delays.skip()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.kill(), 10)
            await asyncio.wait_for(self._killed.wait(), 10)  # a stop already under way
        for task in [*self._tasks, *([self.main] if self.main else [])]:
            task.cancel()
        for task in [*self._tasks, *([self.main] if self.main else [])]:
            with contextlib.suppress(BaseException):
                await task

    # ---- user operations (POST /v1/client/allocation/:id/restart|signal) -----------
    def main_tasks_running(self) -> bool:
        """Nomad's health view: every main and sidecar task runs (ephemeral hooks excluded)."""
        return all(
            self.task_states[n]["State"] == "running"
            for n, t in self.tasks.items()
            if not _hook(t)[0] or _hook(t)[1]
        )

    def running_tasks(self) -> list[str]:
        return [n for n, st in self.task_states.items() if st["State"] == "running"]

    async def restart_task(self, name: str, reason: str = "User requested restart") -> None:
        task = self.tasks[name]
        self.emit(name, "Restart Signaled", RestartReason=reason)
        await self.driver(task).restart(self.alloc, task, self._ctx(name))
        st = self.task_states[name]
        st["Restarts"] += 1
        st["LastRestart"] = rfc3339(now_ns())
        self.emit(name, "Restarting", "Task restarting in 0s")
        self.emit(name, "Started")

    async def fail_task(self, name: str, message: str) -> None:
        """A hook (template) failed the running task: kill it as failed, then the alloc."""
        if self.task_states[name]["State"] == "dead":
            return
        task = self.tasks[name]
        self.emit(
            name, "Killing", message, FailsTask=True, KillTimeout=task.get("KillTimeout", 5 * NS)
        )
        try:
            await self.driver(task).stop(self.alloc, task, self._ctx(name))
        except Exception as exc:
            log.warning("driver stop failed for %s/%s: %s", self.alloc["ID"], name, exc)
        self.emit(name, "Killed")
        self.set_state(name, "dead", failed=True)
        await self.kill(reason_failed=True, failed_sibling=name)

    async def signal_task(self, name: str, signal: str) -> None:
        task = self.tasks[name]
        self.emit(
            name,
            "Signaling",
            f"Task being sent signal {signal}: User requested signal",
            TaskSignal=signal,
            TaskSignalReason="User requested signal",
        )
        await self.driver(task).signal(self.alloc, task, self._ctx(name), signal)
