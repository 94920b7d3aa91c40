"""Process supervision for raw_exec tasks: own process group, graceful kill, always reaped.

Nomad's executor runs a task as a child in its own process group, sends the task's kill signal
to the task process, waits its kill timeout, then kills everything the task started (cgroup
destroy). Here the process group plays the cgroup: after the task process exits, by itself or
killed, whatever is left of its group is SIGKILLed, and every group this module ever started is
remembered until it is empty; tasks also die with the devstack process (PDEATHSIG) and an
``atexit`` hook kills what is left, so a crashed devstack takes its children along. Exit
results follow Nomad's executor: a death by signal is exit code 128 + signal.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LIVE_GROUPS: set[int] = set()


@dataclass(frozen=True)
class ExitResult:
    exit_code: int
    signal: int = 0

    @property
    def successful(self) -> bool:
        return self.exit_code == 0 and self.signal == 0


def parse_signal(name: str) -> signal.Signals:
    """`SIGHUP`, `hup`, `HUP` -> signal.SIGHUP; raises ValueError for anything else."""
    key = name.strip().upper()
    if not key:
        raise ValueError("no signal given")
    if not key.startswith("SIG"):
        key = "SIG" + key
    try:
        return signal.Signals[key]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@atexit.register
def _kill_leftovers() -> None:
    """Last resort when the devstack dies without stopping its tasks."""
    for pgid in list(_LIVE_GROUPS):
        _kill_group(pgid)
    _LIVE_GROUPS.clear()


class Supervised:
    """One started task process and its process group."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid  # start_new_session: the leader's pid names the group
        self._result: ExitResult | None = None
        self._waiter: asyncio.Task[ExitResult] = asyncio.get_running_loop().create_task(
            self._wait()
        )

    async def _wait(self) -> ExitResult:
        code = await self.proc.wait()
        result = ExitResult(128 - code, -code) if code < 0 else ExitResult(code)
        await self._sweep()
        self._result = result
        return result

    async def _sweep(self) -> None:
        """Kill what the task left in its group, and forget the group once it is empty."""
        for _ in range(100):
            if not _group_alive(self.pgid):
                break
            _kill_group(self.pgid)
            await asyncio.sleep(0.02)
        _LIVE_GROUPS.discard(self.pgid)

    @property
    def running(self) -> bool:
        return self._result is None and not self._waiter.done()

    async def wait(self) -> ExitResult:
        return await asyncio.shield(self._waiter)

    def send(self, sig: signal.Signals) -> None:
        """Signal the task process (not its group), as Nomad's executor does."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def stop(self, sig: signal.Signals, grace: float) -> ExitResult:
        """Kill signal, up to `grace` seconds to exit, then SIGKILL to the whole group."""
        self.send(sig)
        try:
            return await asyncio.wait_for(asyncio.shield(self._waiter), grace)
        except TimeoutError:
            _kill_group(self.pgid)
            return await self.wait()

    def kill_now(self) -> None:
        """Synchronous SIGKILL of the group (cancellation paths)."""
        _kill_group(self.pgid)


async def spawn(
    argv: list[str], *, env: dict[str, str], cwd: Path, stdout: Path, stderr: Path
) -> Supervised:
    """Start `argv` in a new session (its own process group) with output appended to files."""
    out, err = _open_logs(stdout, stderr)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=str(cwd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(out)
        os.close(err)
    _LIVE_GROUPS.add(proc.pid)
    return Supervised(proc)


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once in the parent: a forked child of a threaded process must not dlopen.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGKILL when the devstack process dies (Linux), so no task outlives it."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _open_logs(stdout: Path, stderr: Path) -> tuple[int, int]:
    stdout.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    out = os.open(stdout, flags, 0o644)
    try:
        return out, os.open(stderr, flags, 0o644)
    except OSError:
        os.close(out)
        raise
