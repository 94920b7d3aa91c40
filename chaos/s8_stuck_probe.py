"""8. A slow or stuck reconcile blocks no other key, and the timeouts are honoured.

A meshed raw_exec app runs behind its real nginx sidecar and is Ready. Then its nginx is frozen
(SIGSTOP): the TLS port still accepts TCP connections (the kernel's backlog) but no handshake is
ever answered — a black hole. Its health reconciles now wait in TLS probes. Meanwhile a new
meshed job is submitted.
Invariant: the new job is injected and reaches Ready while the black hole persists; every probe
of the black hole ends within its timeout (connect + handshake, 3 s each here); the frozen job's
CertValid turns False naming the failed handshake, not hanging in its last state.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Sequence
from typing import Any

import psutil

from chaos.harness import Check, Outcome, wait_until
from chaos.world import DEV_TUNING, DevWorld, devstack_world, https_get, meshed_web
from crds_equivalent import keys
from crds_equivalent.status import ConditionType, Phase


class TimedProbe:
    """Wraps the controller's TlsProber to record how long each probe round took."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.rounds: list[tuple[float, list[str]]] = []

    async def probe_many(self, targets: Sequence[Any], anchors_pem: str) -> list[Any]:
        started = time.monotonic()
        results = await self.inner.probe_many(targets, anchors_pem)
        self.rounds.append((time.monotonic() - started, [str(r.outcome) for r in results]))
        return list(results)

    async def probe(self, target: Any, anchors_pem: str) -> Any:
        return await self.inner.probe(target, anchors_pem)


async def sidecar_processes(w: DevWorld, job_id: str) -> list[psutil.Process]:
    allocs = await w.app.jobs.job_allocations(job_id, "default")
    for a in allocs:
        if a["ClientStatus"] == "running":
            pid = w.stack.executor.pid(a["ID"], keys.SIDECAR_TASK)
            if pid:
                root = psutil.Process(pid)
                return [root, *root.children(recursive=True)]
    raise LookupError(f"no running sidecar of {job_id}")


async def run() -> Outcome:
    check = Check()
    async with devstack_world() as w:
        app = w.app
        # the prober behind the handshakes the health and certs checks make (and reuse)
        timed = TimedProbe(app.handshakes.probe)
        app.handshakes.probe = timed

        async def cond(job_id: str, kind: ConditionType) -> tuple[str, str, str]:
            status = await app.statuses.get("default", job_id)
            c = status.condition(kind) if status else None
            phase = str(status.phase) if status else ""
            return (phase, str(c.status), c.message) if c else (phase, "", "")

        async def ready(job_id: str) -> bool:
            return (await cond(job_id, ConditionType.CERT_VALID))[0] == Phase.READY

        await app.jobs.register_job(meshed_web("frozen"), enforce_index=None)
        await wait_until(lambda: ready("frozen"), within=90, what="frozen Ready")
        procs = await sidecar_processes(w, "frozen")
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            rounds_before = len(timed.rounds)
            await app.jobs.register_job(meshed_web("fresh"), enforce_index=None)
            fresh_ready = await wait_until(lambda: ready("fresh"), within=60, what="fresh Ready")

            async def frozen_judged() -> bool:
                _, status, _ = await cond("frozen", ConditionType.CERT_VALID)
                return status == "False"

            judged = await wait_until(frozen_judged, within=30, what="frozen CertValid False")
            judged += fresh_ready
            _, _, message = await cond("frozen", ConditionType.CERT_VALID)
            stuck_rounds = [d for d, outs in timed.rounds[rounds_before:] if "ok" not in outs]
            fresh_https = await https_get(w, "fresh")
        finally:
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGCONT)
        limit = 2 * DEV_TUNING.probe_timeout + 0.5
        check.that(bool(stuck_rounds), "no probe of the black hole was seen")
        check.that(
            all(d <= limit for d in stuck_rounds),
            f"a probe round took {max(stuck_rounds, default=0):.1f}s (limit {limit:.1f}s)",
        )
        check.that(fresh_https == 200, f"fresh answered {fresh_https} over HTTPS")
        check.that(fresh_ready < 30, f"fresh took {fresh_ready:.1f}s to be Ready")
        return check.outcome(
            {
                "fresh_ready_during_black_hole_s": fresh_ready,
                "frozen_cert_false_after_s": judged,
                "black_hole_probe_rounds": len(stuck_rounds),
                "black_hole_probe_max_s": max(stuck_rounds, default=0.0),
                "probe_timeout_s": DEV_TUNING.probe_timeout,
                "frozen_reason": message[:100],
                "stalled_for_s": time.monotonic() - stopped_at,
            }
        )
