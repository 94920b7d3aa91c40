"""The control-plane benchmark's phases, each a function over a running twin (and controller).

Times come from the twin's own records wherever possible: a job version's ``SubmitTime`` is
stamped by the twin when the register is applied, so "converged at" and "event -> register"
are read from the store after the fact instead of being sampled by a polling loop.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psutil

from bench.jobs import bump, user_job
from bench.procs import Api, ControllerProc, cpu_seconds, delta, workload
from crds_equivalent.config import MeshConfig
from reconcilers.injection.hashing import INJECTOR_VERSION
from reconcilers.injection.plan import NoOp, plan_job

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


async def cold_start(
    api: Api, twin: psutil.Process, ctl: ControllerProc, namespace: str, n: int, poll: float
) -> dict[str, Any]:
    """Wait until every job in ``namespace`` carries the current marker; time it from the
    controller's spawn to the SubmitTime of the last injected version."""
    twin0 = cpu_seconds(twin)
    startup_cpu: float | None = None
    deadline = time.monotonic() + max(120.0, n * 0.2)
    while True:
        await asyncio.sleep(poll)
        usage = ctl.usage()  # the last CPU and peak-RSS sample of a process that may exit next
        if startup_cpu is None and await api.controller_status(ctl) is not None:
            startup_cpu = usage["cpu_s"]  # imports and wiring: a process's, not a job's, cost
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
        "startup_cpu_s": round(startup_cpu or 0.0, 2),
        "controller_cpu_share": round(usage["cpu_s"] / polled, 2),
        "twin_cpu_share": round(twin_cpu / polled, 2),
        "rss_mb_at_convergence": round(usage["rss_mb"], 1),
        "peak_rss_mb": round(usage["peak_rss_mb"], 1),
        "controller_restarts": list(ctl.restarts),
    }


async def quiescent(api: Api, ctl: ControllerProc, within: float, polling: int = 0) -> float:
    """Wait until the controller's mesh queue is empty (nothing queued or in flight, at most
    ``polling`` keys waiting for a timed re-check), it holds no status record back, and the
    twin's scheduler is idle; returns the seconds waited. ``polling`` tolerates jobs whose
    rollout the twin failed: the controller re-checks those every rollout poll, for ever, as it
    should. Held records count: under load a record waits for its rollout's outcome, and a
    phase that ended before they went out would charge their writes to the next phase (what
    made a resync at N=100 look like it wrote 30 status records)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        ctl.usage()
        ctl.restart_if_exited()
        status = await api.controller_status(ctl)
        if status is not None:
            q, held = status["queue"], status.get("status_records", {}).get("pending", 0)
            if not (q["depth"] or q["in_flight"] or held) and q["waiting"] <= polling:
                st = await api.call("GET", "/_bench/settled")
                if not (st["evals_pending"] or st["allocs_pending"] or st["deployments_running"]):
                    return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise TimeoutError(f"controller not quiescent within {within}s; see {ctl.log_path}")


async def calls_stop(api: Api, quiet_for: float = 1.5, within: float = 15.0) -> float:
    """Wait until the controller's calls to the twin (the lock's aside) stop for ``quiet_for``
    seconds: status writes are coalesced (MESH_STATUS_WRITE_INTERVAL, 1 s), so an empty queue
    can still have writes to flush. Returns the seconds waited (``within`` at most)."""
    start = time.monotonic()
    last, since = workload(await api.requests()), start
    while time.monotonic() - start < within:
        await asyncio.sleep(0.25)
        now = workload(await api.requests())
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            break
    return time.monotonic() - start


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
    runs. Measured: time until its queue drains and the job reads stop, and every write.
    The drain counts only once the controller has handed the LIST over (``lists`` in its
    /status went up): the hand-over comes after the fill's allocation and deployment LISTs,
    and until then the queue is empty because nothing was enqueued yet, not because it was
    done (what a resync of 10k once "took 0.34 s" measured)."""
    status0 = await api.controller_status(ctl)
    handed_over = status0["event_stream"]["lists"] if status0 else 0
    before, status_reads = await api.requests(), api.status_reads
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
    # /status lists every job: at 10k, polled every 50 ms for the whole drain, it would cost
    # the controller a good part of the CPU the phase measures
    poll = 0.05 if n <= 1000 else 0.25
    while True:
        await asyncio.sleep(poll)
        now = await api.requests()
        status = await api.controller_status(ctl)
        done = status is not None and status["event_stream"]["lists"] > handed_over
        q = status["queue"] if status and done else {"depth": 1, "in_flight": 1}
        if not (q["depth"] or q["in_flight"]) and now.get("GET job", 0) == reads:
            break
        reads = now.get("GET job", 0)
    seconds = time.monotonic() - start - poll  # the last poll only confirmed the quiet
    calls = api.without_status_reads(workload(delta(now, before)), status_reads)
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
    api: Api,
    namespace: str,
    ids: Sequence[str],
    seed_: int,
    rate: float,
    seconds: float,
    first_revision: int = 1000,
) -> list[tuple[str, int]]:
    """Users redeploy random meshed jobs (un-injected spec, as CI does) at ``rate`` per second.
    Returns (job, revision) of every update sent; revisions count up from ``first_revision``,
    so each run's updates can be told from an earlier run's."""
    rng = random.Random(seed_)
    sent: list[tuple[str, int]] = []
    tasks: list[asyncio.Task[Any]] = []
    start = time.monotonic()
    for k in range(int(rate * seconds)):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        job_id = rng.choice(ids)
        revision = first_revision + k
        sent.append((job_id, revision))
        tasks.append(
            asyncio.create_task(api.register(bump(user_job(job_id, seed_, namespace), revision)))
        )
    await asyncio.gather(*tasks)
    return sent


def register_latencies(
    registers: Sequence[dict[str, Any]], revisions: set[str]
) -> tuple[list[float], int]:
    """Pure: over the twin's log of registers (in order), each user register of a revision in
    ``revisions`` (no marker) to the next register of the same job: ours (current marker) is a
    latency in ms, the user's again is a superseded update. Returns (latencies, superseded)."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for r in registers:
        by_job.setdefault(r["ID"], []).append(r)
    latencies: list[float] = []
    superseded = 0
    for history in by_job.values():
        for v, after in itertools.pairwise(history):
            if any(v["markers"]) or v["revision"] not in revisions:
                continue
            if all(str(m).startswith(CURRENT) for m in after["markers"]):
                latencies.append((after["SubmitTime"] - v["SubmitTime"]) / 1e6)
            else:
                superseded += 1
    return latencies, superseded


async def churn_latencies(
    api: Api, namespace: str, sent: Sequence[tuple[str, int]]
) -> dict[str, Any]:
    """Event -> register latencies of ``sent`` from the twin's log of registers, not from
    ``/versions``: Nomad keeps 6 versions of a job, and churn makes more than that."""
    registers = await api.call("GET", f"/_bench/registers?namespace={namespace}")
    latencies, superseded = register_latencies(registers, {str(r) for _, r in sent})
    return {
        "updates": len(sent),
        "measured": len(latencies),
        "superseded": superseded,
        "latencies_ms": latencies,
    }
