"""Real nginx for a rendered sidecar (``devstack.sidecar_render``): start it with the task's own
command line, wait for a port, reload it as Nomad's SIGHUP change mode does, stop it as its
KillSignal does. The data-plane tests of the egress path share this."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from devstack.sidecar_render import RenderedSidecar
from tests.support.waiting import eventually

HOST = "127.0.0.1"


@dataclass
class Nginx:
    proc: asyncio.subprocess.Process
    sidecar: RenderedSidecar
    stdout: Path  # the task's two logs, apart as Nomad keeps them: nginx opens /dev/stdout
    stderr: Path  # again for its access log, which would overwrite a shared file's stderr

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    async def wait_listening(self, port: int) -> None:
        async def listening() -> bool:
            if self.proc.returncode is not None:
                raise AssertionError(f"nginx exited {self.proc.returncode}: {self.output()}")
            try:
                _r, w = await asyncio.open_connection(HOST, port)
            except OSError:
                return False
            w.close()
            await w.wait_closed()
            return True

        await eventually(listening, every=0.02, what=f"nginx listening on {port}")

    def reload(self) -> None:
        """The template's change mode: ``signal``/``SIGHUP`` to the task."""
        os.kill(self.proc.pid, signal.SIGHUP)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()


async def start_nginx(sidecar: RenderedSidecar) -> Nginx:
    stdout, stderr = sidecar.task_root / "nginx.stdout", sidecar.task_root / "nginx.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *sidecar.argv,
            cwd=str(sidecar.task_root),
            env=sidecar.env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    return Nginx(proc, sidecar, stdout, stderr)
