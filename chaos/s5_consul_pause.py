"""5. Consul is paused (its listener closed: connection refused, as when the agent stops).

A meshed raw_exec web app runs behind its real nginx sidecar and is Ready. Then Consul goes
away for 15 s. Invariant: the controller reports ConsulHealthy as Unknown (not False), takes no
destructive action (no job write, no allocation replaced), the service keeps serving HTTPS;
after the resume the status is Ready again with ConsulHealthy True.
"""

from __future__ import annotations

import asyncio
import time

from chaos.harness import Check, Outcome, wait_until
from chaos.world import devstack_world, https_get, https_to, meshed_web, tls_instance
from crds_equivalent.status import ConditionType, Phase

PAUSE = 15.0


async def run() -> Outcome:
    check = Check()
    async with devstack_world() as w:
        app = w.app
        await app.jobs.register_job(meshed_web("pay"), enforce_index=None)

        async def status_is(phase: Phase | None, consul: str) -> bool:
            status = await app.statuses.get("default", "pay")
            cond = status.condition(ConditionType.CONSUL_HEALTHY) if status else None
            return (
                status is not None
                and phase in (None, status.phase)
                and cond is not None
                and (cond.status == consul)
            )

        ready_s = await wait_until(lambda: status_is(Phase.READY, "True"), within=90, what="Ready")
        job = await app.jobs.get_job("pay", "default")
        assert job is not None
        version = job["Version"]
        allocs = {a["ID"] for a in await app.jobs.job_allocations("pay", "default")}
        writes = sum(app.reconciler.writes.values())

        address, port = await tls_instance(w, "pay")
        await w.stack.consul.faults.pause()
        paused = time.monotonic()
        unknown_s = await wait_until(
            lambda: status_is(None, "Unknown"),
            within=PAUSE,
            what="ConsulHealthy Unknown",
        )
        seen_false = False
        served = 0
        while time.monotonic() - paused < PAUSE:
            status = await app.statuses.get("default", "pay")
            cond = status.condition(ConditionType.CONSUL_HEALTHY) if status else None
            seen_false |= cond is not None and cond.status == "False"
            served += await https_to(w, "pay", address, port) == 200
            await asyncio.sleep(0.5)
        status = await app.statuses.get("default", "pay")
        paused_phase = status.phase if status else None
        paused_msg = status.message if status else ""
        await w.stack.consul.faults.resume()
        back_s = await wait_until(
            lambda: status_is(Phase.READY, "True"), within=30, what="Ready after resume"
        )
        job = await app.jobs.get_job("pay", "default")
        assert job is not None
        now_allocs = {a["ID"] for a in await app.jobs.job_allocations("pay", "default")}
        check.that(not seen_false, "ConsulHealthy went False while Consul was away")
        check.that(job["Version"] == version, "the job was written during the pause")
        check.that(sum(app.reconciler.writes.values()) == writes, "controller wrote a job")
        check.that(now_allocs == allocs, "allocations were replaced")
        check.that(served > 0, "the service did not serve HTTPS while Consul was away")
        code = await https_get(w, "pay")
        check.that(code == 200, f"HTTPS after resume answered {code}")
        return check.outcome(
            {
                "ready_after_submit_s": ready_s,
                "unknown_after_pause_s": unknown_s,
                "phase_while_paused": str(paused_phase),
                "message_while_paused": paused_msg[:80],
                "https_ok_while_paused": served,
                "ready_after_resume_s": back_s,
                "job_writes_during_pause": 0 if job["Version"] == version else "some",
            }
        )
