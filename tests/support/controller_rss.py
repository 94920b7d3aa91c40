"""The controller's resident memory at N jobs, as ``make bench`` reads it, in minutes not twenty.

``python -m tests.support.controller_rss [N] [--churn-s S] [--env K=V ...]`` seeds N of the
benchmark's jobs (``bench.jobs``) into the benchmark's Nomad twin, waits for the twin to
settle, spawns ``controller run`` as its own process with the benchmark's settings
(``bench.procs.ControllerProc``, a real OpenBao for the per-job PKI roles) and reads its
VmRSS and VmHWM (/proc/<pid>/status) at each milestone of the cold start:

- ``started``: it answered /status (imports and wiring done, before any job);
- ``synced``: the LIST and the per-job GETs of the fill are handed over;
- ``converged``: every job carries the current marker;
- ``quiet``: the queue is empty, the twin idle and the status writes flushed;
- ``churned``: after ``--churn-s`` seconds of users redeploying jobs at ``--rate`` per second
  and the controller quiet again (the benchmark's churn phase, shortened).

What ``controller_footprint`` cannot say: its controller runs traced, in the measuring process.
Here nothing but the controller is in the process, so the figures are those of the benchmark;
set ``--env`` (``MALLOC_ARENA_MAX=2``, ``PYTHONMALLOC=malloc``) to try an allocator setting
without a code change. A measurement, not a test: nothing here asserts the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cp_phases as phases
from bench.jobs import job_ids
from bench.procs import Api, ControllerProc, TwinProc
from devstack.vault import start_openbao
from devstack.workload_login import controller_vault_env

NAMESPACE = "bench"
SEED = 8  # the benchmark's (bench.control_plane.Plan.seed)
WORKERS = "4"  # the benchmark's (bench.control_plane.WORKERS)


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid``, in MB (10^6 bytes, as the benchmark prints them)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(value.split()[0]) * 1024 / 1e6, 1)
    return out


class Sampler:
    """Milestones of one controller process, with its RSS sampled in between."""

    def __init__(self, ctl: ControllerProc) -> None:
        self.ctl = ctl
        self.start = time.monotonic()
        self.milestones: dict[str, dict[str, float]] = {}

    def mark(self, name: str) -> None:
        if self.ctl.proc.poll() is not None:
            raise RuntimeError(f"controller exited {self.ctl.proc.returncode}; see log")
        self.milestones[name] = {
            **memory_mb(self.ctl.proc.pid),
            "t_s": round(time.monotonic() - self.start, 1),
            "cpu_s": round(self.ctl.usage()["cpu_s"], 2),
        }


async def until(check: Any, within: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} within {within}s")
        await asyncio.sleep(poll)


async def measure(n: int, churn_s: float, rate: float, env: dict[str, str]) -> dict[str, Any]:
    twin = TwinProc(nodes=max(3, n // 100))
    api = Api(twin.url)
    ids = job_ids(n)
    out: dict[str, Any] = {"jobs": n, "env": env}
    with tempfile.TemporaryDirectory() as tmp:
        bao = await start_openbao(data_dir=tmp)
        ctl: ControllerProc | None = None
        try:
            vault_env = await controller_vault_env(bao)
            await phases.seed(api, NAMESPACE, ids, SEED)
            await api.settled(600)
            ctl = ControllerProc(
                twin.url,
                NAMESPACE,
                Path(tmp) / "controller.log",
                MESH_WORKERS=WORKERS,
                MESH_RESYNC_INTERVAL="1h",
                **vault_env,
                **env,
            )
            s = Sampler(ctl)

            async def status_is(field: str) -> bool:
                st = await api.controller_status(ctl)
                return st is not None and bool(field == "up" or st.get(field))

            await until(lambda: status_is("up"), 60, "started", poll=0.1)
            s.mark("started")
            await until(lambda: status_is("synced"), max(120, n * 0.1), "synced", poll=0.2)
            s.mark("synced")

            async def converged() -> bool:
                jobs = await api.jobs(NAMESPACE)
                return sum(phases.converged(j) for j in jobs.values()) == n

            await until(converged, max(120, n * 0.2), "converged", poll=1.0)
            s.mark("converged")
            await phases.quiescent(api, ctl, 600, polling=n // 100)
            await phases.calls_stop(api)
            s.mark("quiet")
            if churn_s > 0:
                await phases.churn(api, NAMESPACE, ids, SEED, rate, churn_s, 1000)
                await phases.quiescent(api, ctl, 600, polling=n // 100)
                await phases.calls_stop(api)
                s.mark("churned")
            out["milestones_mb"] = s.milestones
            out["peak_mb"] = memory_mb(ctl.proc.pid)["VmHWM"]
            out["lock_losses"] = ctl.lock_losses()
        finally:
            if ctl is not None:
                ctl.stop(graceful=False)
            await api.close()
            twin.stop()
            await bao.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="?", type=int, default=2000)
    parser.add_argument("--churn-s", type=float, default=20.0, help="0: no churn")
    parser.add_argument("--rate", type=float, default=20.0, help="updates per second")
    parser.add_argument("--env", action="append", default=[], help="K=V for the controller")
    args = parser.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    print(json.dumps(asyncio.run(measure(args.jobs, args.churn_s, args.rate, env)), indent=2))


if __name__ == "__main__":
    main()
