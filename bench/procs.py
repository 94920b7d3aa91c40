"""The control-plane benchmark's processes: the Nomad twin, the controller, and a client for both.

Each runs as its own OS process so that the load driver (this process), the twin and the
controller compete for the two cores the way they would on a real host, and so that psutil can
charge CPU time and RSS to each of them separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

PYTHON = sys.executable
CONTROLLER = str(Path(sys.executable).with_name("controller"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a live process (VmHWM, kB in /proc/<pid>/status), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def lock_losses_in(log_path: Path) -> int:
    """The elector logs the event "leadership lost" once per loss, just before the process
    exits 1: a metric dies with the process, the JSON log does not."""
    losses = 0
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        losses += isinstance(record, dict) and record.get("event") == "leadership lost"
    return losses


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class TwinProc:
    """``python -m bench.twin`` in its own process."""

    def __init__(self, nodes: int) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bench.twin", "--nodes", str(nodes)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Nomad twin did not start")
        self.url: str = json.loads(line)["url"]
        self.ps = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ControllerProc:
    """``controller run`` against the twin, without Consul (the twin runs without it too, so
    Nomad judges deployments by task states): health says Unknown/ConsulNotConfigured at once.
    A closed Consul port instead made every health pass spend the Consul client's retry budget,
    which a real cluster's Consul never costs. Vault points at a closed port unless ``env``
    names one; injection needs Vault (it grants each job its PKI role), so the benchmark passes
    a real one."""

    def __init__(self, nomad_url: str, namespace: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        closed = free_port()  # bound and released: nothing listens there
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("MESH_", "NOMAD_", "CONSUL_"))
        }
        self.env = {
            **base,
            "NOMAD_ADDR": nomad_url,
            "VAULT_ADDR": f"http://127.0.0.1:{closed}",
            "VAULT_TOKEN": "bench-unused",
            "MESH_HTTP_ADDR": f"127.0.0.1:{self.port}",
            "MESH_NAMESPACES": namespace,
            "MESH_HEALTH_INTERVAL": "1h",
            "MESH_LOG_FORMAT": "json",
            **env,
        }
        self.log_path = log_path
        self.started_ns = time.time_ns()
        self.base = f"http://127.0.0.1:{self.port}"
        self.restarts: list[int] = []  # exit codes of earlier processes
        self._earlier_cpu = 0.0  # CPU seconds of earlier processes (last sample before exit)
        self._last_cpu = 0.0
        self._earlier_peak = 0.0  # VmHWM of earlier processes (last sample before exit)
        self._last_peak = 0.0
        log_path.write_bytes(b"")
        self._spawn()

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [CONTROLLER, "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.ps = psutil.Process(self.proc.pid)

    def restart_if_exited(self) -> bool:
        """What a supervisor (the Nomad system job's restart policy) does: start it again.
        True when it had exited (a leader that cannot renew its lock exits 1 by design)."""
        code = self.proc.poll()
        if code is None:
            return False
        self.restarts.append(code)
        self._earlier_cpu += self._last_cpu
        self._last_cpu = 0.0
        self._earlier_peak = max(self._earlier_peak, self._last_peak)
        self._last_peak = 0.0
        self._spawn()
        return True

    def usage(self) -> dict[str, float]:
        """CPU seconds of every process so far (user + system from /proc/<pid>/stat; earlier
        processes as last sampled), current RSS, and peak RSS: the kernel's high-water mark
        (VmHWM in /proc/<pid>/status), so no peak between two samples is missed."""
        try:
            self._last_cpu = cpu_seconds(self.ps)
            rss = self.ps.memory_info().rss / 1e6
            self._last_peak = max(self._last_peak, vm_hwm_mb(self.ps.pid))
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            rss = 0.0
        return {
            "cpu_s": self._earlier_cpu + self._last_cpu,
            "rss_mb": rss,
            "peak_rss_mb": max(self._earlier_peak, self._last_peak, rss),
        }

    def lock_losses(self) -> int:
        """Leases lost by every process of this run (they all append to one log)."""
        return lock_losses_in(self.log_path)

    def stop(self, graceful: bool = True) -> int:
        """SIGTERM and wait for the drain (exit 0 expected); or, when not graceful, SIGKILL
        (the quick run does not spend its budget on the drain)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode or 0)


class Api:
    """The load driver's HTTP client for the twin (Nomad API + /_bench/) and the controller."""

    def __init__(self, twin_url: str, limit: int = 64) -> None:
        self.url = twin_url
        self.status_reads = 0
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=120),
            json_serialize=lambda o: json.dumps(o, separators=(",", ":")),
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, body: Any = None, base: str = "") -> Any:
        async with self.session.request(method, (base or self.url) + path, json=body) as r:
            text = await r.text()
            if r.status >= 400:
                raise RuntimeError(f"{method} {path}: {r.status} {text[:200]}")
            return json.loads(text) if text else None

    async def register(self, job: dict[str, Any], enforce_index: int | None = None) -> Any:
        body: dict[str, Any] = {"Job": job}
        if enforce_index is not None:
            body.update(EnforceIndex=True, JobModifyIndex=enforce_index)
        ns = job["Namespace"]
        return await self.call("POST", f"/v1/job/{job['ID']}?namespace={ns}", body)

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any]:
        job: dict[str, Any] = await self.call("GET", f"/v1/job/{job_id}?namespace={namespace}")
        return job

    async def put_var(
        self, path: str, namespace: str, items: dict[str, str], cas: int
    ) -> dict[str, Any]:
        """A Variable write with check-and-set (``cas=0``: only if it does not exist)."""
        body = {"Namespace": namespace, "Path": path, "Items": items}
        out: dict[str, Any] = await self.call(
            "PUT", f"/v1/var/{path}?namespace={namespace}&cas={cas}", body
        )
        return out

    async def lock_grants(self) -> int:
        """How many times the twin granted a Variable lock (each a new leadership term)."""
        locks: dict[str, int] = await self.call("GET", "/_bench/locks")
        return sum(locks.values())

    async def requests(self) -> dict[str, int]:
        counts: dict[str, int] = await self.call("GET", "/_bench/requests")
        return counts

    async def jobs(self, namespace: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = await self.call(
            "GET", f"/_bench/jobs?namespace={namespace}"
        )
        return out

    async def settled(self, within: float) -> float:
        """Wait until the twin's scheduler is idle; returns the seconds waited."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            st = await self.call("GET", "/_bench/settled")
            if not (st["evals_pending"] or st["allocs_pending"] or st["deployments_running"]):
                return time.monotonic() - start
            await asyncio.sleep(0.25)
        raise TimeoutError(f"the twin did not settle within {within}s")

    async def controller_metrics(self, ctl: ControllerProc) -> str:
        """The controller's /metrics text ("" when it does not answer)."""
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with self.session.get(ctl.base + "/metrics") as r:
                return await r.text() if r.status == 200 else ""
        return ""

    async def controller_status(self, ctl: ControllerProc) -> dict[str, Any] | None:
        """The controller's /status. Each answer cost it one Nomad read (the rotation
        Variable, ``GET var``) that no job caused: ``status_reads`` counts them so the phases
        can take them out of what they charge to jobs."""
        with contextlib.suppress(aiohttp.ClientError, RuntimeError, OSError):
            status: dict[str, Any] = await self.call("GET", "/status", base=ctl.base)
            self.status_reads += 1
            return status
        return None

    def without_status_reads(self, calls: dict[str, int], since: int) -> dict[str, int]:
        """``calls`` less the ``GET var`` our /status polls since ``since`` caused."""
        out = dict(calls)
        out["GET var"] = max(0, out.get("GET var", 0) - (self.status_reads - since))
        return {k: v for k, v in out.items() if v}


LOCK_KINDS = ("PUT var lock-acquire", "PUT var lock-renew", "PUT var lock-release")


def renew_latency(metrics: str) -> dict[str, float | None]:
    """From ``leader_renew_duration_seconds``: how many renewals Nomad answered and the bucket
    bound every one of them fell under (None without renewals), read off the histogram."""
    buckets: list[tuple[float, float]] = []
    count = 0.0
    for line in metrics.splitlines():
        if line.startswith("leader_renew_duration_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
        elif line.startswith("leader_renew_duration_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    bound = next((le for le, n in sorted(buckets) if count and n >= count), None)
    return {"renewals": count, "all_renewals_under_s": bound}


def workload(calls: dict[str, int]) -> dict[str, int]:
    """The calls without the leader lock's: a renewal every few seconds is the lease's cost,
    whatever the jobs do, so per-job and per-event figures leave it out (it is shown apart)."""
    return {k: v for k, v in calls.items() if k not in LOCK_KINDS}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Per-kind request counts between two snapshots (kinds that did not move are left out)."""
    out = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(out.items()) if v}
