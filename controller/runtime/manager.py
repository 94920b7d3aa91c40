"""Runs the process's long-lived tasks and decides how the process ends.

Two groups of runnables:
- always-on (``needs_leader = False``: the HTTP server) run on every replica, so standbys
  answer /healthz and /status;
- leader-only (sources, controllers) start when this replica is elected.

Endings, as an exit code for ``sys.exit``:
- SIGTERM/SIGINT (or ``request_stop``): stop the leader-only runnables that cannot drain (the
  sources, so no new keys arrive), drain the ones that can (controllers finish in-flight
  reconciles, bounded by ``drain_timeout``), release the lock, stop the rest -> 0.
- leadership lost: cancel the leader-only group at once, no drain, no release -> 1. A replica
  that might no longer be leader must not keep writing; the supervisor restarts it.
- either way, once the leader-only runnables are stopped (and before the lock is released), the
  ``on_leader_stop`` hooks run with ``graceful`` True or False: work held back for later (the
  status store's coalesced writes) is written or given up, bounded by ``drain_timeout``.
- a runnable ends or crashes on its own -> shut down as above, but -> 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import structlog

from controller.runtime.clock import Clock, wait_for
from controller.runtime.leader import LeaderElector


class Runnable(Protocol):
    name: str
    needs_leader: bool

    async def run(self) -> None:
        """Serve until cancelled."""
        ...


class FuncRunnable:
    """Gives a plain coroutine function the Runnable shape (controller-runtime's RunnableFunc)."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]], needs_leader: bool) -> None:
        self.name = name
        self.needs_leader = needs_leader
        self._run = run

    async def run(self) -> None:
        await self._run()


@runtime_checkable
class Drainable(Protocol):
    async def drain(self, grace: float) -> bool:
        """Stop taking new work; finish in-flight work within ``grace`` seconds."""
        ...


class Manager:
    def __init__(
        self,
        *,
        runnables: Sequence[Runnable],
        clock: Clock,
        elector: LeaderElector | None = None,
        drain_timeout: float = 30.0,
        handle_signals: bool = True,
        logger: Any = None,
        on_leader_stop: Sequence[Callable[[bool], Awaitable[None]]] = (),
    ) -> None:
        self._always = [r for r in runnables if not r.needs_leader]
        self._leader_only = [r for r in runnables if r.needs_leader]
        self._clock = clock
        self._elector = elector
        self._drain_timeout = drain_timeout
        self._handle_signals = handle_signals
        self._log = logger if logger is not None else structlog.get_logger("controller.manager")
        self._stop = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Runnable] = {}
        self._on_leader_stop = tuple(on_leader_stop)
        self.leading = False

    def request_stop(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self._stop.set()

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        loop = asyncio.get_running_loop()
        installed = self._install_signals(loop)
        elector_task: asyncio.Task[None] | None = None
        try:
            for r in self._always:
                self._start(r)
            if self._elector is None:
                self._start_leader_group()
            else:
                elector_task = asyncio.create_task(self._elector.run(), name="leader-elector")
            return await self._supervise(elector_task)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _supervise(self, elector_task: asyncio.Task[None] | None) -> int:
        stop: asyncio.Task[Any] = asyncio.create_task(self._stop.wait())
        elected: asyncio.Task[Any] | None = None
        lost: asyncio.Task[Any] | None = None
        if self._elector is not None:
            elected = asyncio.create_task(self._elector.elected.wait())
            lost = asyncio.create_task(self._elector.lost.wait())
        watch: set[asyncio.Future[Any]] = {stop, *self._tasks}
        watch |= {t for t in (elected, lost, elector_task) if t is not None}
        try:
            while True:
                done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    self._log.info("stopping: signal received")
                    await self._graceful(elector_task)
                    return 0
                if lost in done or (elector_task is not None and elector_task in done):
                    await self._abandon(elector_task)
                    return 1
                if elected is not None and elected in done:
                    watch.discard(elected)
                    elected = None
                    self._start_leader_group()
                    watch |= set(self._tasks)
                crashed = [t for t in done if t in self._tasks]
                if crashed:
                    for t in crashed:
                        self._report_end(t)
                    await self._graceful(elector_task)
                    return 1
        finally:
            for waiter in (stop, elected, lost):
                if waiter is not None:
                    waiter.cancel()

    def _start(self, r: Runnable) -> None:
        self._tasks[asyncio.create_task(r.run(), name=r.name)] = r

    def _start_leader_group(self) -> None:
        self.leading = True
        self._log.info("starting leader-only runnables", count=len(self._leader_only))
        for r in self._leader_only:
            self._start(r)

    def _report_end(self, task: asyncio.Task[None]) -> None:
        name = self._tasks[task].name
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self._log.error("runnable crashed", runnable=name, error=repr(exc), exc_info=exc)
        else:
            self._log.error("runnable ended unexpectedly", runnable=name)

    def _running(self, *, leader: bool) -> list[asyncio.Task[None]]:
        return [t for t, r in self._tasks.items() if r.needs_leader is leader and not t.done()]

    async def _graceful(self, elector_task: asyncio.Task[None] | None) -> None:
        leader_tasks = {t: self._tasks[t] for t in self._running(leader=True)}
        sources = [t for t, r in leader_tasks.items() if not isinstance(r, Drainable)]
        await _cancel(sources)
        drainables = [r for t, r in leader_tasks.items() if isinstance(r, Drainable)]
        if drainables:
            results = await asyncio.gather(
                *(r.drain(self._drain_timeout) for r in drainables), return_exceptions=True
            )
            if not all(res is True for res in results):
                self._log.warning("drain incomplete; in-flight work cancelled", results=results)
            with contextlib.suppress(TimeoutError):
                # Drained runnables return by themselves; give them a moment, then cancel.
                await wait_for(self._clock, _settled(self._running(leader=True)), 1.0)
        await _cancel(self._running(leader=True))
        await self._stopped_leading(graceful=True)
        await _cancel([elector_task] if elector_task is not None else [])
        if self._elector is not None:
            await self._elector.release()
        await _cancel(self._running(leader=False))

    async def _abandon(self, elector_task: asyncio.Task[None] | None) -> None:
        self._log.error("leadership lost: stopping leader-only work without draining; exit 1")
        await _cancel(self._running(leader=True))
        await self._stopped_leading(graceful=False)
        await _cancel([elector_task] if elector_task is not None else [])
        await _cancel(self._running(leader=False))

    async def _stopped_leading(self, *, graceful: bool) -> None:
        """Run the ``on_leader_stop`` hooks of a leader (a standby has nothing to hand over)."""
        was_leading, self.leading = self.leading, False
        if not was_leading:
            return
        for hook in self._on_leader_stop:
            try:
                await wait_for(self._clock, hook(graceful), self._drain_timeout)
            except Exception as exc:  # a hook that fails must not keep the process alive
                self._log.warning("leader-stop hook failed", error=repr(exc))

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if not self._handle_signals:
            return []
        installed: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError, ValueError):  # not main thread or not Unix
                continue
            installed.append(sig)
        return installed


async def _settled(tasks: list[asyncio.Task[None]]) -> None:
    if tasks:
        await asyncio.wait(tasks)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
