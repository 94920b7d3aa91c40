"""1. The event stream is dropped every K frames for a minute while 50 jobs change.

Invariant: everything converges — every job carries exactly one sidecar per group, and every
job keeps its user's latest spec (no lost user changes).
"""

from __future__ import annotations

import random
import time

from chaos.harness import Check, Outcome, wait_until
from chaos.world import job_versions, keeps_user_spec, sidecar_count, twin_world
from devstack.testing import injected, stored, user_job

JOBS = 50
DROP_EVERY = 5  # frames per stream connection
CHURN_SECONDS = 60.0
CHANGE_EVERY = 0.2  # one user change (a CI re-submit of the plain spec) this often


def spec(job_id: str, rev: int) -> dict[str, object]:
    return user_job(job_id, {"mesh.tls": "true", "rev": str(rev)})


async def run() -> Outcome:
    import asyncio

    check = Check()
    rng = random.Random(1)
    async with twin_world() as w:
        names = [f"drop{i:02d}" for i in range(JOBS)]
        revs = dict.fromkeys(names, 0)
        w.twin.faults.stream_drop_after = DROP_EVERY
        for name in names:
            w.submit_now(spec(name, 0))
        changes = 0
        end = time.monotonic() + CHURN_SECONDS
        while time.monotonic() < end:
            name = rng.choice(names)
            revs[name] += 1
            w.submit_now(spec(name, revs[name]))
            changes += 1
            await asyncio.sleep(CHANGE_EVERY)
        reconnects = w.app.registry.get_sample_value("nomad_event_stream_reconnects_total") or 0
        w.twin.faults.stream_drop_after = 0
        calls_churn = w.requests.total

        def converged() -> bool:
            return all(
                injected(stored(w.twin, n)) and keeps_user_spec(stored(w.twin, n), w.submitted[n])
                for n in names
            )

        took = await wait_until(converged, within=60, what="all 50 jobs converged")
        per_job = [job_versions(w.twin, n) for n in names]
        user_writes = JOBS + changes
        ours = sum(w.app.reconciler.writes.values())
        check.that(all(sidecar_count(stored(w.twin, n)) == 1 for n in names), "duplicate sidecar")
        check.that(reconnects >= changes / DROP_EVERY / 4, f"stream was not dropped ({reconnects})")
        check.that(ours <= user_writes, f"{ours} controller writes for {user_writes} user writes")
        check.that(sum(per_job) == user_writes + ours, "versions != user writes + ours")
        return check.outcome(
            {
                "jobs": JOBS,
                "user_changes": user_writes,
                "stream_reconnects": int(reconnects),
                "relists": w.app.source.lists,
                "converge_after_churn_s": took,
                "controller_writes": ours,
                "versions_per_job_max": max(per_job),
                "versions_total": sum(per_job),
                "nomad_calls": w.requests.total,
                "nomad_calls_during_churn": calls_churn,
            }
        )
