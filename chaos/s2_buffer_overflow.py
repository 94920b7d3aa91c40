"""2. The event buffer overflows: a buffer of 10 raft indexes and a burst of 500 changes.

Nomad drops a subscriber that falls out of its buffer (or, on resume, silently starts at the
oldest index it still has); the controller can only notice by the stream ending or by its
periodic resync. Invariant: a re-LIST catches up — every meshed job is injected with its user's
latest spec, the unmeshed noise is never touched — and the time it takes is recorded.
"""

from __future__ import annotations

import time

from chaos.harness import Check, Outcome, wait_until
from chaos.world import job_versions, keeps_user_spec, sidecar_count, twin_world
from devstack.testing import injected, stored, user_job

MESHED = 50
REVS = 8  # 50 x 8 = 400 changes to meshed jobs
NOISE = 100  # + 100 changes to an unmeshed job = 500


async def run() -> Outcome:
    check = Check()
    async with twin_world(buffer=10) as w:
        lists_before = w.app.source.lists
        names = [f"burst{i:02d}" for i in range(MESHED)]
        started = time.monotonic()
        for rev in range(REVS):  # 500 registrations without yielding once
            for name in names:
                w.submit_now(user_job(name, {"mesh.tls": "true", "rev": str(rev)}))
            for n in range(NOISE // REVS + (1 if rev < NOISE % REVS else 0)):
                w.submit_now(user_job("noise", {"rev": f"{rev}.{n}"}))
        burst = time.monotonic() - started

        def converged() -> bool:
            return all(
                injected(stored(w.twin, n)) and keeps_user_spec(stored(w.twin, n), w.submitted[n])
                for n in names
            )

        took = await wait_until(converged, within=60, what="all meshed jobs converged")
        reconnects = w.app.registry.get_sample_value("nomad_event_stream_reconnects_total") or 0
        changes = MESHED * REVS + job_versions(w.twin, "noise")
        check.that(changes == 500, f"burst made {changes} changes, not 500")
        check.that(w.app.source.lists > lists_before, "no re-LIST: the overflow was not noticed")
        check.that(not injected(stored(w.twin, "noise")), "the unmeshed job was touched")
        check.that(all(sidecar_count(stored(w.twin, n)) == 1 for n in names), "duplicate sidecar")
        ours = sum(w.app.reconciler.writes.values())
        check.that(ours == MESHED, f"{ours} controller writes for {MESHED} jobs")
        return check.outcome(
            {
                "changes": changes,
                "burst_s": burst,
                "catch_up_s": took,
                "relists": w.app.source.lists - lists_before,
                "stream_reconnects": int(reconnects),
                "controller_writes": ours,
                "versions_per_job": job_versions(w.twin, names[0]),
                "nomad_calls": w.requests.total,
            }
        )
