"""3. Nomad answers 503 to 30 % of requests, with 200 ms of latency on every one.

Invariant: the controller backs off (its request rate stays bounded — at most what its workers
and stream can issue at 200 ms per call, far below an unthrottled retry loop), the reconcile
error metric counts the failures, nothing is written twice, and after the storm every job
converges.
"""

from __future__ import annotations

import asyncio

from chaos.harness import Check, Outcome, wait_until
from chaos.world import job_versions, keeps_user_spec, sidecar_count, twin_world
from devstack.testing import injected, stored, user_job

JOBS = 20
STORM_SECONDS = 20.0
LATENCY = 0.2
# 4 mesh + 4 health workers, the source and the lock each wait 200 ms per call: 10 callers
# x 5 calls/s = 50/s is the most a well-behaved controller can issue. An unbounded retry loop
# would be limited only by latency and concurrency of aiohttp (hundreds per second).
RATE_BOUND = 60


async def run() -> Outcome:
    check = Check()
    async with twin_world(MESH_WORKERS="4") as w:
        names = [f"storm{i:02d}" for i in range(JOBS)]
        w.twin.faults.update(
            {"error_ratio": 0.3, "error_status": 503, "latency": LATENCY, "seed": 3}
        )
        before = w.requests.total
        second0 = max(w.requests.by_second, default=0) + 1
        for i, name in enumerate(names):
            w.submit_now(user_job(name, {"mesh.tls": "true"}))
            if i % 5 == 4:
                await asyncio.sleep(1.0)
        await asyncio.sleep(STORM_SECONDS - JOBS / 5)
        storm_calls = w.requests.total - before
        storm_failed = w.requests.failed
        storm_seconds = [n for s, n in w.requests.by_second.items() if s >= second0]
        peak = max(storm_seconds, default=0)
        errors = w.app.registry.get_sample_value(
            "controller_reconcile_errors_total", {"controller": "mesh"}
        ) or w.app.registry.get_sample_value(
            "controller_reconcile_total", {"controller": "mesh", "result": "error"}
        )
        retries = w.app.registry.get_sample_value("workqueue_retries_total", {"name": "mesh"})
        injected_in_storm = sum(injected(stored(w.twin, n)) for n in names)
        w.twin.faults.reset()

        def converged() -> bool:
            return all(
                injected(stored(w.twin, n)) and keeps_user_spec(stored(w.twin, n), w.submitted[n])
                for n in names
            )

        took = await wait_until(converged, within=60, what="converged after the storm")
        check.that(peak <= RATE_BOUND, f"{peak} calls in one second during the storm")
        check.that(storm_failed > 0, "the storm failed no request")
        check.that((errors or 0) > 0, "reconcile error metric did not count the storm")
        check.that(
            all(job_versions(w.twin, n) == 2 for n in names), "a job was written more than once"
        )
        check.that(all(sidecar_count(stored(w.twin, n)) == 1 for n in names), "duplicate sidecar")
        return check.outcome(
            {
                "storm_s": STORM_SECONDS,
                "calls_in_storm": storm_calls,
                "failed_503": storm_failed,
                "calls_per_s_peak": peak,
                "calls_per_s_mean": storm_calls / STORM_SECONDS,
                "reconcile_errors": int(errors or 0),
                "queue_retries": int(retries or 0),
                "injected_during_storm": injected_in_storm,
                "converge_after_storm_s": took,
                "versions_per_job": 2,
            }
        )
