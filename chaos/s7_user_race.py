"""7. A user races the controller: a hot job is re-registered every 200 ms for 30 s (a CI loop
submitting the plain spec with a new revision each time).

Invariant: the user's latest spec always survives — sampled before every user write, the
stored job carries the user's last revision, never an older one put back by the controller —
the sidecar ends on top, and the controller writes at most once per user write (no fight loop).
"""

from __future__ import annotations

import asyncio
import time

from chaos.harness import Check, Outcome, wait_until
from chaos.world import job_versions, keeps_user_spec, sidecar_count, twin_world
from devstack.testing import injected, stored, user_job

EVERY = 0.2
SECONDS = 30.0


async def run() -> Outcome:
    check = Check()
    async with twin_world() as w:
        rev = 0
        lost = 0
        samples = 0
        with_sidecar = 0
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            w.submit_now(user_job("hot", {"mesh.tls": "true", "rev": str(rev)}, count=1 + rev % 3))
            await asyncio.sleep(EVERY)
            job = stored(w.twin, "hot")
            samples += 1
            if not keeps_user_spec(job, w.submitted["hot"]):
                lost += 1
            with_sidecar += injected(job)
            rev += 1
        user_writes = rev
        took = await wait_until(
            lambda: (
                injected(stored(w.twin, "hot"))
                and keeps_user_spec(stored(w.twin, "hot"), w.submitted["hot"])
            ),
            within=30,
            what="hot job converged",
        )
        ours = sum(w.app.reconciler.writes.values())
        total = job_versions(w.twin, "hot")
        check.that(lost == 0, f"the user's latest spec was missing in {lost} of {samples} samples")
        check.that(sidecar_count(stored(w.twin, "hot")) == 1, "duplicate sidecar")
        check.that(ours <= user_writes, f"{ours} controller writes for {user_writes} user writes")
        check.that(total == user_writes + ours, f"{total} versions != {user_writes} + {ours}")
        return check.outcome(
            {
                "user_writes": user_writes,
                "controller_writes": ours,
                "writes_per_user_write": ours / user_writes,
                "sampled_with_sidecar": f"{with_sidecar}/{samples}",
                "user_spec_lost": lost,
                "versions": total,
                "converge_after_last_write_s": took,
            }
        )
