"""4. OpenBao is sealed for real (`sys/seal`, as `bao operator seal`), then unsealed.

A meshed raw_exec web app runs behind its real nginx sidecar with a leaf from OpenBao. Then
OpenBao is sealed, and a new meshed job is submitted while it is.
Invariant: the running service keeps serving verified HTTPS with its current certificate; the
new job waits with a clear reason in its status (never Ready without a certificate) and is
never half-injected; after the unseal it converges to Ready and serves HTTPS.
"""

from __future__ import annotations

import asyncio
import time

from chaos.harness import Check, Outcome, wait_until
from chaos.world import devstack_world, half_injected, https_get, https_to, meshed_web, tls_instance
from crds_equivalent.status import Phase

SEALED = 20.0


async def run() -> Outcome:
    check = Check()
    async with devstack_world() as w:
        app = w.app

        async def phase(job_id: str) -> tuple[Phase | None, str]:
            status = await app.statuses.get("default", job_id)
            return (status.phase, status.message) if status else (None, "")

        async def ready(job_id: str) -> bool:
            return (await phase(job_id))[0] == Phase.READY

        await app.jobs.register_job(meshed_web("ledger"), enforce_index=None)
        await wait_until(lambda: ready("ledger"), within=90, what="ledger Ready")
        address, port = await tls_instance(w, "ledger")

        await w.stack.vault.seal()
        sealed_at = time.monotonic()
        await app.jobs.register_job(meshed_web("late"), enforce_index=None)
        served = tries = 0
        half = 0
        late_ready = False
        reasons: set[str] = set()
        while time.monotonic() - sealed_at < SEALED:
            tries += 1
            served += await https_to(w, "ledger", address, port) == 200
            late = await app.jobs.get_job("late", "default")
            half += half_injected(late)
            p, message = await phase("late")
            late_ready |= p == Phase.READY
            if message:
                reasons.add(f"{p}: {message}")
            await asyncio.sleep(0.5)
        p, message = await phase("late")
        await w.stack.vault.unseal()
        unsealed_at = time.monotonic()
        took = await wait_until(lambda: ready("late"), within=90, what="late Ready after unseal")
        late_https = await https_get(w, "late")
        check.that(served == tries, f"ledger served {served} of {tries} requests while sealed")
        check.that(not late_ready, "the new job was Ready while OpenBao was sealed")
        check.that(
            "vault" in message.lower(), f"the waiting job's reason does not name Vault: {message!r}"
        )
        check.that(half == 0, "the new job was seen half-injected")
        check.that(late_https == 200, f"late answered {late_https} over HTTPS after the unseal")
        return check.outcome(
            {
                "sealed_s": SEALED,
                "https_ok_while_sealed": f"{served}/{tries}",
                "late_phase_while_sealed": str(p),
                "late_reason": message[:160],
                "late_ready_after_unseal_s": took,
                "half_injected_samples": half,
                "since_unseal_s": time.monotonic() - unsealed_at,
            }
        )
