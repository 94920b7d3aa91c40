"""Control-plane benchmark: the controller against the Nomad twin, as separate processes.

For each N: a fresh twin (simulated drivers, no task processes) gets N realistic meshed jobs in
namespace ``ceiling`` and the same N in ``bench``. The load driver (this process) first measures
the ceiling on ``ceiling``: a bare client doing GET + POST-with-EnforceIndex per job at the
controller's concurrency. Then ``controller run`` starts, watching only ``bench``, and the cold
start is timed until every job carries the current marker; its throughput over the ceiling's is
the headline ratio. In the full run the controller is then left to finish its rollout checks,
a full resync is measured (its writes must be 0), users redeploy jobs at a fixed rate
(event -> register latency), and CI-rendered specs (already injected) measure a no-op event.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cp_phases as phases
from bench.jobs import job_ids
from bench.procs import Api, ControllerProc, TwinProc, delta
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
    churn_at: int = 1000
    churn_rate: float = 20.0
    churn_seconds: float = 30.0
    noop_events: int = 100
    seed: int = 8


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

    before = await api.requests()
    await phases.bounded(4, bodies, submit)
    await phases.quiescent(api, ctl, 120, polling=len(ids) // 100)
    calls = delta(await api.requests(), before)
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


async def scale_point(n: int, plan: Plan, workdir: Path) -> dict[str, Any]:
    config = load_mesh_config({})
    twin = TwinProc(nodes=max(3, n // 100))
    api = Api(twin.url)
    ctl: ControllerProc | None = None
    out: dict[str, Any] = {"n": n}
    bao = await start_openbao(data_dir=str(workdir / f"openbao-{n}"))
    try:
        vault_env = await controller_vault_env(bao)
        ids = job_ids(n)
        out["seed_s"] = round(
            await phases.seed(api, "ceiling", ids, plan.seed)
            + await phases.seed(api, "bench", ids, plan.seed),
            2,
        )
        say(f"N={n}: seeded 2x{n} jobs in {out['seed_s']}s")
        bodies = await phases.ceiling_bodies(api, "ceiling", ids, config)  # while it settles
        out["settle_s"] = round(await api.settled(300), 1)
        say(f"N={n}: twin settled (+{out['settle_s']}s); measuring the ceiling")
        out["ceiling"] = await phases.ceiling(api, twin.ps, "ceiling", bodies, WORKERS)
        say(f"N={n}: ceiling {out['ceiling']['jobs_per_s']} jobs/s")
        out["settle2_s"] = round(await api.settled(300), 1)
        say(f"N={n}: twin settled after {out['settle2_s']}s; starting the controller")
        rate = out["ceiling"]["jobs_per_s"]
        before = await api.requests()
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
        cold["ratio_to_ceiling"] = round(cold["jobs_per_s"] / rate, 3)
        cold["calls_until_converged"] = delta(await api.requests(), before)
        out["cold_start"] = cold
        say(f"N={n}: cold start {cold['jobs_per_s']} jobs/s, ratio {cold['ratio_to_ceiling']}")
        if plan.full:
            out["quiesce_s"] = round(await phases.quiescent(api, ctl, 600, polling=n // 100), 1)
            status = await api.controller_status(ctl) or {}
            out["still_polling"] = status.get("queue", {}).get("waiting")
            calls = delta(await api.requests(), before)
            usage = ctl.usage()
            out["per_new_job"] = {
                "calls": {k: round(v / n, 2) for k, v in calls.items()},
                "calls_total": round(sum(calls.values()) / n, 2),
                "cpu_s_per_1000_jobs": round(usage["cpu_s"] / n * 1000, 2),
                "rss_mb": round(usage["rss_mb"], 1),
            }
            out["verified_noop"] = await phases.verify(api, "bench", ids, config)
            out["resync"] = await phases.resync(api, ctl, "bench", n)
            if n == plan.churn_at:
                out["churn"] = await churn(api, ctl, ids, plan)
                out["noop_event"] = await noop_events(api, ctl, ids, plan.noop_events)
            out["rss_mb_end"] = round(ctl.usage()["rss_mb"], 1)
        else:
            out["per_new_job"] = {
                "calls_until_converged": round(sum(cold["calls_until_converged"].values()) / n, 2),
                "cpu_s_per_1000_jobs": round(cold["cpu_s_at_convergence"] / n * 1000, 2),
                "rss_mb": cold["rss_mb_at_convergence"],
            }
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


async def churn(api: Api, ctl: ControllerProc, ids: list[str], plan: Plan) -> dict[str, Any]:
    await phases.quiescent(api, ctl, 300, polling=len(ids) // 100)
    start = time.monotonic()
    sent = await phases.churn(api, "bench", ids, plan.seed, plan.churn_rate, plan.churn_seconds)
    await phases.quiescent(api, ctl, 300, polling=len(ids) // 100)
    result = await phases.churn_latencies(api, "bench", sent)
    lat = result.pop("latencies_ms")
    result.update(
        rate_per_s=plan.churn_rate,
        seconds=round(time.monotonic() - start, 1),
        p50_ms=round(percentile(lat, 0.50), 2),
        p95_ms=round(percentile(lat, 0.95), 2),
        p99_ms=round(percentile(lat, 0.99), 2),
        max_ms=round(max(lat), 2) if lat else None,
        mean_ms=round(statistics.fmean(lat), 2) if lat else None,
        samples_ms=[round(x, 2) for x in sorted(lat)],
    )
    return result


async def run(plan: Plan, workdir: Path) -> dict[str, Any]:
    points = [await scale_point(n, plan, workdir) for n in plan.sizes]
    headline = next((p for p in points if p["n"] == max(plan.sizes)), points[-1])
    return {
        "workers": WORKERS,
        "points": points,
        "ratio": headline["cold_start"]["ratio_to_ceiling"],
        "ratio_at_n": headline["n"],
    }
