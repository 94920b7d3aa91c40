"""9. Split brain: two controllers both believe they lead, because the lock is forged in the
twin (the second acquire is answered with a lock of its own; both renew forever).

One of them is also slow to write (a 300 ms stall before every register, like a GC pause or a
partitioned node), so its writes are made from views that are stale by the time they land.
Invariant: fencing rejects the stale writer — EnforceIndex conflicts are counted — and no job is
clobbered: every job ends injected exactly once per user spec, with its user's latest spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

from chaos.harness import Check, Outcome, wait_until
from chaos.world import job_versions, keeps_user_spec, no_backends_env, sidecar_count
from controller.app import App
from controller.nomad.errors import Conflict
from crds_equivalent.keys import VAR_LEADER
from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.nomad.jobsvc import register
from devstack.nomad.variables import VarConflict
from devstack.testing import injected, running, settings_for, stored, user_job

JOBS = 30
STALL = 0.3


def forge_lock(twin: NomadTwin) -> list[str]:
    """Make the twin hand out the leader lock to everyone who asks, and renew all of them."""
    store = twin.variables
    real_acquire, real_renew = store.acquire, store.renew
    forged: list[str] = []

    def acquire(ns: str, path: str, items: Any, ttl: int, delay: int) -> dict[str, Any]:
        try:
            return real_acquire(ns, path, items, ttl, delay)
        except VarConflict:
            if path != VAR_LEADER:
                raise
            var = copy.deepcopy(store.vars[(ns, path)])
            var["Lock"] = dict(var["Lock"], ID=f"forged-{len(forged)}")
            forged.append(var["Lock"]["ID"])
            return var

    def renew(ns: str, path: str, lock_id: str) -> dict[str, Any]:
        if lock_id in forged:
            return copy.deepcopy(store.vars[(ns, path)])
        return real_renew(ns, path, lock_id)

    store.acquire = acquire  # type: ignore[method-assign]
    store.renew = renew  # type: ignore[method-assign]
    return forged


class Fenced:
    """Counts the EnforceIndex conflicts one controller's writes run into; optionally stalls."""

    def __init__(self, app: App, stall: float) -> None:
        self.conflicts = 0
        self.landed = 0
        inner = app.jobs.register_job

        async def register_job(job: dict[str, Any], *, enforce_index: int | None) -> Any:
            if stall:
                await asyncio.sleep(stall)
            try:
                answer = await inner(job, enforce_index=enforce_index)
            except Conflict:
                self.conflicts += 1
                raise
            self.landed += 1
            return answer

        app.jobs.register_job = register_job  # type: ignore[method-assign]


async def run() -> Outcome:
    check = Check()
    twin = await start_nomad_twin(nodes=2, heartbeat_interval=0.2)
    submitted: dict[str, dict[str, Any]] = {}

    def submit(job: dict[str, Any]) -> None:
        register(twin.state, twin.scheduler, copy.deepcopy(job), "default", False, 0)
        submitted[job["ID"]] = job

    try:
        forged = forge_lock(twin)
        settings = settings_for(twin, **no_backends_env())
        async with contextlib.AsyncExitStack() as stack:
            a, _ = await stack.enter_async_context(running(settings, identity="ctl-a"))
            b, _ = await stack.enter_async_context(running(settings, identity="ctl-b"))
            check.that(a.elector.is_leader and b.elector.is_leader, "not both leading")
            check.that(len(forged) == 1, "the lock was not forged")
            fa, fb = Fenced(a, STALL), Fenced(b, 0.0)
            names = [f"split{i:02d}" for i in range(JOBS)]
            for name in names:
                submit(user_job(name, {"mesh.tls": "true", "rev": "0"}))
            await asyncio.sleep(0.15)  # both read rev 0; the fast one writes first...
            for name in names:  # ...and the user changes every job while the slow one stalls
                submit(user_job(name, {"mesh.tls": "true", "rev": "1"}, count=2))

            def converged() -> bool:
                return all(
                    injected(stored(twin, n)) and keeps_user_spec(stored(twin, n), submitted[n])
                    for n in names
                )

            took = await wait_until(converged, within=60, what="split-brain jobs converged")
            await asyncio.sleep(2 * STALL + 0.5)  # let every stalled write land or fail
            still_both = a.elector.is_leader and b.elector.is_leader
            clobbered = [n for n in names if not keeps_user_spec(stored(twin, n), submitted[n])]
            per_job = [job_versions(twin, n) for n in names]
            landed = fa.landed + fb.landed
            check.that(still_both, "one controller stopped leading: no split brain to test")
            check.that(fa.conflicts + fb.conflicts > 0, "no EnforceIndex conflict was counted")
            check.that(not clobbered, f"clobbered: {clobbered}")
            check.that(all(sidecar_count(stored(twin, n)) == 1 for n in names), "duplicate sidecar")
            check.that(sum(per_job) == 2 * JOBS + landed, "versions != user writes + landed")
            return check.outcome(
                {
                    "jobs": JOBS,
                    "user_writes": 2 * JOBS,
                    "conflicts_stale_writer": fa.conflicts,
                    "conflicts_fast_writer": fb.conflicts,
                    "writes_landed": f"{fa.landed}+{fb.landed}",
                    "clobbered_jobs": len(clobbered),
                    "versions_per_job_max": max(per_job),
                    "converge_s": took,
                }
            )
    finally:
        await twin.stop()
