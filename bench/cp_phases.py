"""The control-plane benchmark's phases, each a function over a running twin (and controller).

Times come from the twin's own records wherever possible: a job version's ``SubmitTime`` is
stamped by the twin when the register is applied, so "converged at" and "event -> register"
are read from the store after the fact instead of being sampled by a polling loop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psutil

from bench.jobs import bump, user_job
from bench.procs import Api, ControllerProc, cpu_seconds, delta
from crds_equivalent.config import MeshConfig
from reconcilers.injection.hashing import INJECTOR_VERSION
from reconcilers.injection.plan import Apply, NoOp, plan_job

CURRENT = f"{INJECTOR_VERSION}:"


async def bounded(
    concurrency: int, items: Sequence[Any], fn: Callable[[Any], Awaitable[Any]]
) -> None:
    """Run ``fn`` over ``items`` with at most ``concurrency`` in flight (worker pool)."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await fn(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def seed(api: Api, namespace: str, ids: Sequence[str], seed_: int) -> float:
    """Create the namespace and register every user job in it; returns seconds taken."""
    await api.call("PUT", f"/v1/namespace/{namespace}", {"Name": namespace})
    start = time.monotonic()
    await bounded(16, ids, lambda i: api.register(user_job(i, seed_, namespace)))
    return time.monotonic() - start


def converged(info: dict[str, Any]) -> bool:
    """The job carries a marker of the current injector in every group, written after create."""
    return info["JobModifyIndex"] > info["CreateIndex"] and all(
        m.startswith(CURRENT) for m in info["markers"]
    )


async def ceiling_bodies(
    api: Api, namespace: str, ids: Sequence[str], config: MeshConfig
) -> dict[str, dict[str, Any]]:
    """Untimed: the injected body of each stored job, as the controller would compute it."""
    bodies: dict[str, dict[str, Any]] = {}

    async def prepare(job_id: str) -> None:
        decision = plan_job(await api.get_job(job_id, namespace), config)
        assert isinstance(decision, Apply), decision
        bodies[job_id] = decision.job

    await bounded(16, ids, prepare)
    return bodies


async def ceiling(
    api: Api,
    twin: psutil.Process,
    namespace: str,
    bodies: dict[str, dict[str, Any]],
    concurrency: int,
) -> dict[str, Any]:
    """A bare client doing the controller's calls per job: GET it, POST the injected job with
    EnforceIndex. Bodies are computed beforehand (untimed) so only the calls are measured."""
    ids = list(bodies)
    before = await api.requests()

    async def one(job_id: str) -> None:
        job = await api.get_job(job_id, namespace)
        await api.register(bodies[job_id], enforce_index=int(job["JobModifyIndex"]))

    me = psutil.Process()
    cpu0, own0 = cpu_seconds(twin), cpu_seconds(me)
    start = time.monotonic()
    await bounded(concurrency, ids, one)
    seconds = time.monotonic() - start
    cpu1, own1 = cpu_seconds(twin), cpu_seconds(me)
    calls = delta(await api.requests(), before)
    return {
        "jobs": len(ids),
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "twin_cpu_share": round((cpu1 - cpu0) / seconds, 2),
        "driver_cpu_share": round((own1 - own0) / seconds, 2),
        "jobs_per_s": round(len(ids) / seconds, 1),
        "calls": calls,
    }


async def cold_start(
    api: Api, twin: psutil.Process, ctl: ControllerProc, namespace: str, n: int, poll: float
) -> dict[str, Any]:
    """Wait until every job in ``namespace`` carries the current marker; time it from the
    controller's spawn to the SubmitTime of the last injected version."""
    peak_rss = 0.0
    twin0 = cpu_seconds(twin)
    deadline = time.monotonic() + max(120.0, n * 0.2)
    while True:
        await asyncio.sleep(poll)
        peak_rss = max(peak_rss, ctl.usage()["rss_mb"])
        jobs = await api.jobs(namespace)
        done = [j for j in jobs.values() if converged(j)]
        if len(done) == n:
            break
        ctl.restart_if_exited()
        if len(ctl.restarts) > 5:
            raise RuntimeError(f"controller keeps exiting {ctl.restarts}; see {ctl.log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"cold start: {len(done)}/{n} converged; see {ctl.log_path}")
    usage = ctl.usage()
    twin_cpu = cpu_seconds(twin) - twin0
    last = max(j["SubmitTime"] for j in done)
    first = min(j["SubmitTime"] for j in done)
    seconds = (last - ctl.started_ns) / 1e9
    polled = (time.time_ns() - ctl.started_ns) / 1e9
    return {
        "jobs": n,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(n / seconds, 1),
        "startup_s": round((first - ctl.started_ns) / 1e9, 3),
        "write_window_s": round((last - first) / 1e9, 3),
        "jobs_per_s_after_first_write": round(n / max((last - first) / 1e9, 1e-9), 1),
        "cpu_s_at_convergence": round(usage["cpu_s"], 2),
        "controller_cpu_share": round(usage["cpu_s"] / polled, 2),
        "twin_cpu_share": round(twin_cpu / polled, 2),
        "rss_mb_at_convergence": round(usage["rss_mb"], 1),
        "peak_rss_mb": round(max(peak_rss, usage["rss_mb"]), 1),
        "controller_restarts": list(ctl.restarts),
    }


async def quiescent(api: Api, ctl: ControllerProc, within: float, polling: int = 0) -> float:
    """Wait until the controller's mesh queue is empty (nothing queued or in flight, at most
    ``polling`` keys waiting for a timed re-check) and the twin's scheduler is idle; returns
    the seconds waited. ``polling`` tolerates jobs whose rollout the twin failed: the
    controller re-checks those every rollout poll, for ever, as it should."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        ctl.restart_if_exited()
        status = await api.controller_status(ctl)
        if status is not None:
            q = status["queue"]
            if not (q["depth"] or q["in_flight"]) and q["waiting"] <= polling:
                st = await api.call("GET", "/_bench/settled")
                if not (st["evals_pending"] or st["allocs_pending"] or st["deployments_running"]):
                    return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise TimeoutError(f"controller not quiescent within {within}s; see {ctl.log_path}")


async def verify(api: Api, namespace: str, ids: Sequence[str], config: MeshConfig) -> int:
    """Untimed: how many jobs the controller's own plan would leave alone (NoOp)."""
    ok = 0

    async def one(job_id: str) -> None:
        nonlocal ok
        if isinstance(plan_job(await api.get_job(job_id, namespace), config), NoOp):
            ok += 1

    await bounded(16, ids, one)
    return ok


TRIGGER = {
    "ID": "resync-trigger",
    "Type": "service",
    "Datacenters": ["nowhere"],  # never placed: one Job event, no allocation events
    "TaskGroups": [
        {"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "docker", "Config": {}}]}
    ],
}


async def resync(api: Api, ctl: ControllerProc, namespace: str, n: int) -> dict[str, Any]:
    """A full resync, on demand: the twin drops the event stream at its next frame (a job
    nobody meshes), and the controller reconnects the way it always does — LIST, enqueue every
    meshed job, stream from the LIST's index — the same ``list_and_enqueue`` its periodic timer
    runs. Measured: time until its queue drains and the job reads stop, and every write."""
    before = await api.requests()
    lists = before.get("GET jobs", 0)
    await api.call("POST", "/_twin/faults", {"stream_drop_after": 1})
    await api.register({**TRIGGER, "Namespace": namespace})
    deadline = time.monotonic() + 60
    while True:
        now = await api.requests()
        if now.get("GET jobs", 0) > lists:
            start = time.monotonic()
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the controller did not LIST again after its stream dropped")
        await asyncio.sleep(0.01)
    await api.call("DELETE", "/_twin/faults")
    cpu0 = ctl.usage()["cpu_s"]
    reads = -1
    while True:
        await asyncio.sleep(0.05)
        now = await api.requests()
        status = await api.controller_status(ctl)
        q = status["queue"] if status else {"depth": 1, "in_flight": 1}
        if not (q["depth"] or q["in_flight"]) and now.get("GET job", 0) == reads:
            break
        reads = now.get("GET job", 0)
    seconds = time.monotonic() - start - 0.05  # the last poll only confirmed the quiet
    calls = delta(now, before)
    calls["POST job"] = calls.get("POST job", 0) - 1  # the trigger job is ours, not a write
    calls = {k: v for k, v in calls.items() if v}
    writes = {k: v for k, v in calls.items() if not k.startswith("GET")}
    return {
        "jobs": n,
        "seconds": round(seconds, 3),
        "calls": calls,
        "calls_per_job": round(sum(calls.values()) / n, 2),
        "writes": writes,
        "job_writes": calls.get("POST job", 0),
        "cpu_s": round(ctl.usage()["cpu_s"] - cpu0, 2),
    }


async def churn(
    api: Api, namespace: str, ids: Sequence[str], seed_: int, rate: float, seconds: float
) -> list[tuple[str, int]]:
    """Users redeploy random meshed jobs (un-injected spec, as CI does) at ``rate`` per second.
    Returns (job, revision) of every update sent."""
    rng = random.Random(seed_)
    sent: list[tuple[str, int]] = []
    tasks: list[asyncio.Task[Any]] = []
    start = time.monotonic()
    for k in range(int(rate * seconds)):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        job_id = rng.choice(ids)
        revision = 1000 + k
        sent.append((job_id, revision))
        tasks.append(
            asyncio.create_task(api.register(bump(user_job(job_id, seed_, namespace), revision)))
        )
    await asyncio.gather(*tasks)
    return sent


async def churn_latencies(
    api: Api, namespace: str, sent: Sequence[tuple[str, int]]
) -> dict[str, Any]:
    """From each job's versions: the user's register (no marker) to the next version, ours."""
    latencies: list[float] = []
    superseded = 0
    for job_id in sorted({j for j, _ in sent}):
        body = await api.call("GET", f"/v1/job/{job_id}/versions?namespace={namespace}")
        by_version = {v["Version"]: v for v in body["Versions"]}
        for version, v in by_version.items():
            markers = [(g.get("Meta") or {}).get("mesh.tls.injected") for g in v["TaskGroups"]]
            if any(markers) or "revision" not in (v.get("Meta") or {}):
                continue
            after = by_version.get(version + 1)
            if after is None:
                continue
            ours = all(
                str((g.get("Meta") or {}).get("mesh.tls.injected", "")).startswith(CURRENT)
                for g in after["TaskGroups"]
            )
            if not ours:
                superseded += 1
                continue
            latencies.append((after["SubmitTime"] - v["SubmitTime"]) / 1e6)
    return {
        "updates": len(sent),
        "measured": len(latencies),
        "superseded": superseded,
        "latencies_ms": latencies,
    }
