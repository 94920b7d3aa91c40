"""Control-plane benchmark: the controller against the Nomad twin, as separate processes.

For each N: a fresh twin (simulated drivers, no task processes) gets N realistic meshed jobs in
namespace ``ceiling`` and the same N in ``bench``. The load driver (this process) first measures
the ceiling on ``ceiling`` (bench/ceiling.py: GET + register with EnforceIndex + a status
Variable PUT with CAS per job, at the controller's concurrency). Then ``controller run`` starts,
watching only ``bench``, and the cold start is timed until every job carries the current
marker; its throughput over the ceiling's is the headline ratio. The controller is then left
until it is quiet (its rollout checks done): the calls it made and the CPU it spent from spawn
to quiet, per job, are what a new job costs. The full run then measures a resync (its writes
must be 0), users redeploying jobs at 20 and at 100 updates/s (event -> register latency), and,
at N = 1,000, CI-rendered specs (already injected: a no-op event). Every point records the
controller's peak RSS, its restarts and the leader leases it lost (zero expected: a loss at
10k fails the check).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cp_phases as phases
from bench.ceiling import ceiling, ceiling_bodies
from bench.jobs import job_ids
from bench.procs import Api, ControllerProc, TwinProc, delta, renew_latency, workload
from controller.config.mesh import load_mesh_config
from devstack.vault import start_openbao
from devstack.workload_login import controller_vault_env


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


WORKERS = 4  # the controller's default MESH_WORKERS; the ceiling uses the same concurrency


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    full: bool
    churn_rates: tuple[float, ...] = (20.0, 100.0)
    churn_seconds: float = 30.0
    noop_at: int = 1000
    noop_events: int = 100
    seed: int = 8
    lock_check_at: int = 10_000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def noop_events(api: Api, ctl: ControllerProc, ids: list[str], count: int) -> dict[str, Any]:
    """CI submits specs rendered up front (already injected; only the app's image is new): each
    is a Job event the controller must look at and leave alone. Counts the controller's calls
    until it is quiet again, and how many of those jobs it re-registered (must be 0)."""
    chosen = ids[:count]
    bodies = []
    for k, job_id in enumerate(chosen):
        job = await api.get_job(job_id, "bench")
        for group in job["TaskGroups"]:
            for task in group["Tasks"]:
                if task["Name"] == "app":
                    task["Config"] = {**task["Config"], "image": f"registry.example/ci:{k}"}
        bodies.append(job)
    ours: dict[str, int] = {}

    async def submit(job: dict[str, Any]) -> None:
        ours[job["ID"]] = int((await api.register(job))["JobModifyIndex"])

    before, status_reads = await api.requests(), api.status_reads
    await phases.bounded(4, bodies, submit)
    await phases.quiescent(api, ctl, 120, polling=len(ids) // 100)
    calls = api.without_status_reads(workload(delta(await api.requests(), before)), status_reads)
    calls["POST job"] = calls.get("POST job", 0) - count  # the users' own registers
    calls = {k: v for k, v in calls.items() if v}
    jobs = await api.jobs("bench")
    rewritten = sum(1 for j in chosen if jobs[j]["JobModifyIndex"] != ours[j])
    return {
        "events": count,
        "controller_calls": calls,
        "calls_per_event": round(sum(calls.values()) / count, 2),
        "controller_job_writes": rewritten,
    }


async def prepare(api: Api, twin: TwinProc, ids: list[str], plan: Plan) -> dict[str, Any]:
    """Seed both namespaces, measure the ceiling, and let the twin settle again."""
    out: dict[str, Any] = {}
    n = len(ids)
    out["seed_s"] = round(
        await phases.seed(api, "ceiling", ids, plan.seed)
        + await phases.seed(api, "bench", ids, plan.seed),
        2,
    )
    say(f"N={n}: seeded 2x{n} jobs in {out['seed_s']}s")
    bodies = await ceiling_bodies(api, "ceiling", ids, load_mesh_config({}))  # while it settles
    out["settle_s"] = round(await api.settled(300), 1)
    say(f"N={n}: twin settled (+{out['settle_s']}s); measuring the ceiling")
    out["ceiling"] = await ceiling(api, twin.ps, "ceiling", bodies, WORKERS)
    say(f"N={n}: ceiling {out['ceiling']['jobs_per_s']} jobs/s")
    out["settle2_s"] = round(await api.settled(300), 1)
    return out


async def new_job_cost(
    api: Api,
    ctl: ControllerProc,
    n: int,
    before: dict[str, int],
    status_reads: int,
    startup_cpu: float,
    within: float,
) -> dict[str, Any]:
    """From the controller's spawn until it is quiet (injection, status records, rollout
    checks): its calls to the twin and its CPU time, per new job. Left out: the leader lock's
    calls (shown apart), the reads our /status polls cost it, and the CPU it spent before it
    first answered /status (imports and wiring, ~1 s whatever N is). ``quiet_s`` is null when
    it was not quiet within ``within`` (the figures then stop there)."""
    try:
        waited = await phases.quiescent(api, ctl, within, n // 100)
        quiet: float | None = round(waited + await phases.calls_stop(api), 1)
    except TimeoutError:
        quiet = None
    everything = delta(await api.requests(), before)
    calls = api.without_status_reads(workload(everything), status_reads)
    usage = ctl.usage()
    return {
        "window": "spawn until quiet",
        "quiet_s": quiet,
        "calls": {k: round(v / n, 3) for k, v in calls.items()},
        "calls_total": round(sum(calls.values()) / n, 2),
        "lock_calls": {k: v for k, v in everything.items() if k not in calls},
        "cpu_ms": round((usage["cpu_s"] - startup_cpu) * 1000 / n, 2),
        "startup_cpu_s": startup_cpu,
        "cpu_ms_with_startup": round(usage["cpu_s"] * 1000 / n, 2),
        "rss_mb": round(usage["rss_mb"], 1),
    }


async def leadership(api: Api, ctl: ControllerProc) -> dict[str, Any]:
    """Leases lost (the controller's own log) and terms granted (the twin's count): one term
    and no loss when the lock held throughout."""
    return {
        "lock_losses": ctl.lock_losses(),
        "lock_terms": await api.lock_grants(),
        "restarts": list(ctl.restarts),
        **renew_latency(await api.controller_metrics(ctl)),  # of the process running now
    }


async def full_phases(api: Api, ctl: ControllerProc, ids: list[str], plan: Plan) -> dict[str, Any]:
    """After the cold start: verify, resync, churn at each rate, no-op events."""
    n = len(ids)
    out: dict[str, Any] = {
        "verified_noop": await phases.verify(api, "bench", ids, load_mesh_config({}))
    }
    out["resync"] = await phases.resync(api, ctl, "bench", n)
    out["churn"] = [
        await churn(api, ctl, ids, plan, rate, first_revision=1000 + 1_000_000 * k)
        for k, rate in enumerate(plan.churn_rates)
    ]
    if n == plan.noop_at:
        out["noop_event"] = await noop_events(api, ctl, ids, plan.noop_events)
    return out


async def scale_point(n: int, plan: Plan, workdir: Path) -> dict[str, Any]:
    twin = TwinProc(nodes=max(3, n // 100))
    api = Api(twin.url)
    ctl: ControllerProc | None = None
    out: dict[str, Any] = {"n": n}
    bao = await start_openbao(data_dir=str(workdir / f"openbao-{n}"))
    try:
        vault_env = await controller_vault_env(bao)
        ids = job_ids(n)
        out.update(await prepare(api, twin, ids, plan))
        say(f"N={n}: twin settled after {out['settle2_s']}s; starting the controller")
        before, status_reads = await api.requests(), api.status_reads
        ctl = ControllerProc(
            twin.url,
            "bench",
            workdir / f"controller-{n}.log",
            MESH_WORKERS=str(WORKERS),
            MESH_RESYNC_INTERVAL="1h",  # the resync phase triggers its own
            **vault_env,
        )
        cold = await phases.cold_start(
            api, twin.ps, ctl, "bench", n, poll=0.2 if n <= 1000 else 1.0
        )
        cold["ratio_to_ceiling"] = round(cold["jobs_per_s"] / out["ceiling"]["jobs_per_s"], 3)
        cold["calls_until_converged"] = delta(await api.requests(), before)
        out["cold_start"] = cold
        say(f"N={n}: cold start {cold['jobs_per_s']} jobs/s, ratio {cold['ratio_to_ceiling']}")
        out["per_new_job"] = await new_job_cost(
            api, ctl, n, before, status_reads, cold["startup_cpu_s"], 600 if plan.full else 30
        )
        say(f"N={n}: quiet after +{out['per_new_job']['quiet_s']}s")
        if plan.full:
            out.update(await full_phases(api, ctl, ids, plan))
        usage = ctl.usage()
        out["rss_mb_end"] = round(usage["rss_mb"], 1)
        out["peak_rss_mb"] = round(usage["peak_rss_mb"], 1)
        out["leadership"] = await leadership(api, ctl)
        out["twin_rss_mb"] = round(twin.ps.memory_info().rss / 1e6, 1)
    finally:
        if ctl is not None:
            out["controller_exit"] = ctl.stop(graceful=plan.full)
            say(f"N={n}: controller stopped")
        await api.close()
        twin.stop()
        await bao.stop()
        say(f"N={n}: processes stopped")
    return out


async def churn(
    api: Api, ctl: ControllerProc, ids: list[str], plan: Plan, rate: float, first_revision: int
) -> dict[str, Any]:
    """Users redeploy jobs at ``rate`` per second for ``plan.churn_seconds``; the latency of
    each update is the twin's SubmitTime of the user's version to that of ours."""
    await phases.quiescent(api, ctl, 300, polling=len(ids) // 100)
    start = time.monotonic()
    sent = await phases.churn(
        api, "bench", ids, plan.seed, rate, plan.churn_seconds, first_revision
    )
    try:  # a controller that cannot keep up must not cost the whole run its results
        drained = await phases.quiescent(api, ctl, 600, polling=len(ids) // 100) >= 0
    except TimeoutError:
        drained = False
    result = await phases.churn_latencies(api, "bench", sent)
    result["drained"] = drained  # False: updates not yet answered are missing from the figures
    lat = result.pop("latencies_ms")
    result.update(
        rate_per_s=rate,
        seconds=round(time.monotonic() - start, 1),
        p50_ms=round(percentile(lat, 0.50), 2),
        p95_ms=round(percentile(lat, 0.95), 2),
        p99_ms=round(percentile(lat, 0.99), 2),
        max_ms=round(max(lat), 2) if lat else None,
        mean_ms=round(statistics.fmean(lat), 2) if lat else None,
        samples_ms=[round(x, 2) for x in sorted(lat)],
    )
    say(f"N={len(ids)}: churn at {rate}/s p99 {result['p99_ms']} ms")
    return result


def lock_check(points: list[dict[str, Any]], at: int) -> dict[str, Any] | None:
    """DESIGN §10: no leader lease lost at 10k. None when that N was not run."""
    p = next((p for p in points if p["n"] == at), None)
    if p is None:
        return None
    losses = p["leadership"]["lock_losses"]
    return {"n": at, "lock_losses": losses, "ok": losses == 0}


async def run(plan: Plan, workdir: Path) -> dict[str, Any]:
    points = [await scale_point(n, plan, workdir) for n in plan.sizes]
    headline = next((p for p in points if p["n"] == max(plan.sizes)), points[-1])
    return {
        "workers": WORKERS,
        "points": points,
        "ratio": headline["cold_start"]["ratio_to_ceiling"],
        "calls_per_job": headline["per_new_job"]["calls_total"],
        "cpu_ms_per_job": headline["per_new_job"]["cpu_ms"],
        "ratio_at_n": headline["n"],
        "lock_check": lock_check(points, plan.lock_check_at),
    }
