"""The raw_exec task driver of the devstack: real processes behind the Nomad twin's clients.

`RawExecDriver` implements the twin's `TaskDriver` protocol. The twin's alloc runner decides
lifecycle order, restart policy and the alloc's events; this driver owns what a Nomad client's
task runner does with a real process: template first render (blocking the start), the task's
environment and interpolated command line, logs under `alloc/logs/`, the process group, kill
signal + kill timeout, user restarts and signals, and the template change modes afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from devstack.executor.clock import Clock, SystemClock
from devstack.executor.identityhook import IdentityHook
from devstack.executor.procs import ExitResult, Supervised, parse_signal, spawn
from devstack.executor.taskenv import build_env, command_line
from devstack.executor.templates import (
    ChangeHandlers,
    RetryPolicy,
    TemplateFailed,
    TemplateManager,
    TemplateSettings,
)
from devstack.executor.tokenfile import write_token
from devstack.executor.vaulthook import (
    TOKEN_FILE,
    VaultHook,
    VaultLoginError,
    identity_name,
)
from devstack.nomad.codec import NS
from devstack.nomad.taskctx import TaskContext
from devstack.template import NomadTarget, VaultTarget

log = logging.getLogger(__name__)


class TaskNotRunning(RuntimeError):
    """A signal or restart for a task without a live process (Nomad: "Task not running")."""


@dataclass
class ExecutorSettings:
    """Devstack knobs; defaults are the Nomad client's."""

    consul_addr: str | None = None  # for the templates' `service`/`key` functions
    consul_poll: float | None = 5.0  # Consul-backed templates re-query this often
    nomad_poll: float | None = 5.0  # nomadVar-backed templates re-read the Variable this often
    vault_verify: bool | str = True
    template_retry: RetryPolicy = field(default_factory=RetryPolicy)
    template_event_interval: float = 3.0  # client `max_template_event_rate`
    max_kill_timeout: float = 30.0  # client `max_kill_timeout`
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    node_meta: dict[str, str] = field(default_factory=dict)


@dataclass
class _Run:
    ctx: TaskContext
    proc: Supervised | None = None
    templates: TemplateManager | None = None
    identities: IdentityHook | None = None
    vault: VaultHook | None = None
    vault_target: VaultTarget | None = None  # the task's own token, for templates and env
    stopping: bool = False
    started: bool = False
    expected: set[int] = field(default_factory=set)  # pids we are stopping ourselves
    monitors: set[asyncio.Task[None]] = field(default_factory=set)


def _kill_signal(task: dict[str, Any]) -> Any:
    return parse_signal(str(task.get("KillSignal") or "SIGINT"))


class RawExecDriver:
    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings()
        self._runs: dict[tuple[str, str], _Run] = {}

    # ---- inspection (tests, tools) ---------------------------------------------------------
    def pid(self, alloc_id: str, task_name: str) -> int | None:
        run = self._runs.get((alloc_id, task_name))
        return run.proc.pid if run and run.proc and run.proc.running else None

    def pids(self) -> list[int]:
        return [r.proc.pid for r in self._runs.values() if r.proc and r.proc.running]

    # ---- TaskDriver --------------------------------------------------------------------------
    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        key = (alloc["ID"], task["Name"])
        run = self._runs.setdefault(key, _Run(ctx))
        if run.stopping:
            return
        if run.identities is None:  # identity_hook.go Prestart
            run.identities = IdentityHook(
                task,
                ctx.task_dir,
                ctx.signed_identity,
                restart=ctx.request_restart,
                signal=lambda sig, why: self._signal_task(run, ctx, sig, why),
                rng=self.settings.rng,
            )
            run.identities.prestart()
            run.identities.start_renewal()
        first_vault = task.get("Vault") is not None and run.vault is None  # vault_hook firstRun
        if first_vault and not await self._derive_vault(run, alloc, task, ctx):
            return
        vault = run.vault_target
        if task.get("Templates") and run.templates is None:
            _, table = self._env(run, task, ctx)
            run.templates = TemplateManager(
                list(task["Templates"]),
                task_dir=ctx.task_dir,
                alloc_dir=ctx.alloc_dir,
                env=table,
                settings=TemplateSettings(
                    vault=vault,
                    consul_addr=self.settings.consul_addr,
                    consul_poll=self.settings.consul_poll,
                    nomad=_nomad(ctx, table),
                    nomad_poll=self.settings.nomad_poll,
                    retry=self.settings.template_retry,
                    event_interval=self.settings.template_event_interval,
                    clock=self.settings.clock,
                    rng=self.settings.rng,
                ),
                handlers=self._handlers(alloc, task, run),
            )
            try:
                await run.templates.first_render()
            except TemplateFailed as err:
                await run.templates.close()
                if not run.stopping:
                    ctx.emit_task_event(
                        "Killing",
                        f"Template failed: {err}",
                        FailsTask=True,
                        KillTimeout=int(task.get("KillTimeout") or 5 * NS),
                    )
                    ctx.set_task_state("dead", failed=True)
                return
        elif run.templates is not None and run.started and _render_on_restart(task):
            await run.templates.render_all()
        if run.stopping:
            return
        await self._spawn(run, task, ctx)
        if run.templates is not None:
            run.templates.watch()

    async def stop(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        run = self._runs.pop((alloc["ID"], task["Name"]), None)
        if run is None:
            return
        run.stopping = True
        if run.templates is not None:
            await run.templates.close()
        await self._kill(run, task, ctx)
        await self._stop_hooks(run)

    async def signal(
        self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext, signal: str
    ) -> None:
        sig = parse_signal(signal)
        run = self._runs.get((alloc["ID"], task["Name"]))
        if run is None or run.proc is None or not run.proc.running:
            raise TaskNotRunning("Task not running")
        run.proc.send(sig)

    async def restart(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        run = self._runs.get((alloc["ID"], task["Name"]))
        if run is None or run.stopping:
            raise TaskNotRunning("Task not running")
        await self._kill(run, task, ctx)
        if run.templates is not None and _render_on_restart(task):
            await run.templates.render_all()
        await self._spawn(run, task, ctx)

    async def close(self) -> None:
        """Kill every process this driver started (devstack shutdown safety net)."""
        runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            run.stopping = True
            if run.templates is not None:
                await run.templates.close()
            await self._stop_hooks(run)
            if run.proc is not None:
                run.expected.add(run.proc.pid)
                run.proc.kill_now()
                await run.proc.wait()
            for monitor in list(run.monitors):
                with contextlib.suppress(BaseException):
                    await monitor

    # ---- internals ---------------------------------------------------------------------------
    async def _stop_hooks(self, run: _Run) -> None:
        """vault_hook.go / identity_hook.go Stop: renewals end (Nomad revokes nothing)."""
        if run.identities is not None:
            await run.identities.stop()
        if run.vault is not None:
            await run.vault.stop()

    async def _derive_vault(
        self, run: _Run, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext
    ) -> bool:
        """vaultHook.Prestart: the task's token from a JWT login; False if the task failed."""
        vault = task["Vault"]
        cluster = str(vault.get("Cluster") or "default")
        if not ctx.vault_addr:  # Prestart's error: TaskRunner's "Task hook failed" event
            ctx.emit_task_event(
                "Task hook failed",
                f'prestart hook "vault" failed: '
                f"No client configuration found for Vault cluster {cluster}",
            )
            ctx.set_task_state("dead", failed=True)
            return False
        target = VaultTarget(
            ctx.vault_addr,
            "",
            verify=self.settings.vault_verify,
            namespace=vault.get("Namespace") or None,
        )

        def write(token: str) -> None:  # vaultHook.writeToken
            write_token(ctx.task_dir / "private" / TOKEN_FILE, token, 0o600)
            if not vault.get("DisableFile"):
                write_token(ctx.secrets_dir / TOKEN_FILE, token)

        async def new_token(_token: str) -> None:
            # tr.updatedVaultToken -> the template hook's Update: templates use the new token
            run.vault_target = hook.target
            if run.templates is not None:
                run.templates.ctx.vault = hook.target
            await self._vault_token_changed(run, task, ctx)

        hook = VaultHook(
            target=target,
            mount=ctx.vault_auth_path,
            role=str(vault.get("Role") or ctx.vault_client_role),
            identity=identity_name(vault),
            sign=ctx.signed_identity,
            write=write,
            on_new_token=new_token,
            rng=self.settings.rng,
        )
        run.vault = hook
        try:
            await hook.derive()
        except VaultLoginError as err:
            await hook.stop()
            if not run.stopping:
                ctx.emit_task_event(
                    "Killing",
                    f"Vault: failed to derive vault token: {err}",
                    FailsTask=True,
                    KillTimeout=int(task.get("KillTimeout") or 5 * NS),
                )
                ctx.set_task_state("dead", failed=True)
            return False
        run.vault_target = hook.target
        hook.start_renewal()
        return not run.stopping

    async def _vault_token_changed(self, run: _Run, task: dict[str, Any], ctx: TaskContext) -> None:
        """vaultHook.run after a re-derived token: the task's change_mode."""
        vault = task.get("Vault") or {}
        mode = vault.get("ChangeMode") or "restart"
        if mode == "signal":
            await self._signal_task(
                run, ctx, str(vault.get("ChangeSignal") or ""), "Vault: new Vault token acquired"
            )
        elif mode == "restart":
            await ctx.request_restart("Vault: new Vault token acquired")

    async def _signal_task(self, run: _Run, ctx: TaskContext, signal: str, why: str) -> None:
        proc = run.proc
        if proc is None or not proc.running:
            return
        try:
            sig = parse_signal(signal)
        except ValueError as err:
            await ctx.fail_task(f"{why.split(':')[0]}: failed to parse signal: {err}")
            return
        ctx.emit_task_event("Signaling", why, TaskSignal=signal)
        proc.send(sig)

    def _env(
        self, run: _Run, task: dict[str, Any], ctx: TaskContext
    ) -> tuple[dict[str, str], dict[str, str]]:
        vault = task.get("Vault") or None
        target = run.vault_target
        inject = vault is not None and vault.get("Env", True) and target is not None
        env, table = build_env(
            task,
            ctx,
            node_meta=self.settings.node_meta,
            vault_token=target.token if inject and target is not None else None,
        )
        if inject and target is not None and target.namespace:
            env["VAULT_NAMESPACE"] = target.namespace
        if run.identities is not None:
            env.update(run.identities.env)
        return env, table

    async def _spawn(self, run: _Run, task: dict[str, Any], ctx: TaskContext) -> None:
        env, table = self._env(run, task, ctx)
        if run.templates is not None:
            env.update(run.templates.env_vars)
        argv = command_line(task, table, ctx.task_dir)
        logs = ctx.shared_alloc_dir / "logs"
        proc = await spawn(
            argv,
            env=env,
            cwd=ctx.task_dir,
            stdout=logs / f"{task['Name']}.stdout.0",
            stderr=logs / f"{task['Name']}.stderr.0",
        )
        if run.stopping:  # stopped while we were starting it
            run.expected.add(proc.pid)
            proc.kill_now()
            await proc.wait()
            return
        run.proc = proc
        run.started = True
        monitor = asyncio.get_running_loop().create_task(self._monitor(run, proc))
        run.monitors.add(monitor)
        monitor.add_done_callback(run.monitors.discard)

    async def _monitor(self, run: _Run, proc: Supervised) -> None:
        result = await proc.wait()
        if run.proc is proc:
            run.proc = None
        if proc.pid in run.expected:
            return
        run.ctx.task_exited(result.exit_code, result.signal)

    async def _kill(self, run: _Run, task: dict[str, Any], ctx: TaskContext) -> None:
        proc = run.proc
        if proc is None or not proc.running:
            return
        run.expected.add(proc.pid)
        timeout = min(int(task.get("KillTimeout") or 5 * NS) / NS, self.settings.max_kill_timeout)
        result: ExitResult = await proc.stop(_kill_signal(task), timeout)
        run.proc = None
        ctx.emit_task_event("Terminated", ExitCode=result.exit_code, Signal=result.signal)

    def _handlers(self, alloc: dict[str, Any], task: dict[str, Any], run: _Run) -> ChangeHandlers:
        ctx = run.ctx

        async def on_signal(name: str) -> None:
            proc = run.proc
            if proc is None or not proc.running:
                ctx.emit_task_event(
                    "Task hook message", f"Template re-rendered; task not running for {name}"
                )
                return
            try:
                sig = parse_signal(name)
            except ValueError as err:
                await ctx.fail_task(f"Template failed to send signals {name}: {err}")
                return
            ctx.emit_task_event("Signaling", "Template re-rendered", TaskSignal=name)
            proc.send(sig)

        async def on_restart(reason: str) -> None:
            if run.proc is not None and run.proc.running:
                await ctx.request_restart(reason)

        return ChangeHandlers(
            emit=ctx.emit_task_event, restart=on_restart, signal=on_signal, fail=ctx.fail_task
        )


def _nomad(ctx: TaskContext, env: dict[str, str]) -> NomadTarget | None:
    """The Nomad API for the task's templates: the server's address, the task's identity."""
    if not ctx.nomad_addr:
        return None
    return NomadTarget(
        ctx.nomad_addr,
        ctx.nomad_token,
        namespace=ctx.nomad_namespace,
        region=env.get("NOMAD_REGION") or "global",
    )


def _render_on_restart(task: dict[str, Any]) -> bool:
    return bool((task.get("RestartPolicy") or {}).get("RenderTemplates"))
