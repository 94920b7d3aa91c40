"""`controller dev` run the way a developer runs it, as a subprocess, for the E2E tests.

Both demos (with Consul and with `--no-consul`) read its output the same way: the exported
environment up to `controller dev ready`, then the lines up to the printed curl; run that curl;
then Ctrl-C, which must end the process with 0 and leave none of its children running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

CONTROLLER = str(Path(sys.executable).with_name("controller"))
EXPORT = re.compile(r"export ([A-Z_]+)=(\S+)")


async def read_line(stream: asyncio.StreamReader, within: float) -> str:
    line = await asyncio.wait_for(stream.readline(), within)
    if not line:
        raise AssertionError("controller dev ended its output early")
    return line.decode().rstrip("\n")


@dataclass
class DevProcess:
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.proc.stdout is not None
        return self.proc.stdout

    async def exports(self, within: float = 60) -> dict[str, str]:
        """The environment it prints, in order, once it says `controller dev ready`."""
        while not self.lines or self.lines[-1] != "controller dev ready":
            self.lines.append(await read_line(self.stdout, within))
        found = [EXPORT.fullmatch(line) for line in self.lines[:-1]]
        assert all(found), self.lines
        return dict(m.groups() for m in found if m is not None)

    async def curl_line(self, within: float = 90) -> str:
        """The demo's curl command; the lines before it are kept in ``lines``."""
        while not (line := await read_line(self.stdout, within)).startswith("curl "):
            self.lines.append(line)
        return line

    async def stop_cleanly(self) -> None:
        """Ctrl-C: exit 0, and nothing it started (nginx included) is left running."""
        children = psutil.Process(self.proc.pid).children(recursive=True)
        assert any(c.name().startswith("nginx") for c in children)
        self.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(self.proc.wait(), 30) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []


async def run_curl(line: str) -> str:
    """Run a printed curl command; its stdout, after checking it succeeded."""
    curl = await asyncio.create_subprocess_exec(
        *shlex.split(line), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(curl.communicate(), 30)
    assert curl.returncode == 0, err.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def controller_dev(*args: str, drop_env: tuple[str, ...]) -> AsyncIterator[DevProcess]:
    """`controller dev ARGS` with the variables starting with ``drop_env`` removed; killed on
    the way out if the test did not stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    proc = await asyncio.create_subprocess_exec(
        CONTROLLER,
        "dev",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        yield DevProcess(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
