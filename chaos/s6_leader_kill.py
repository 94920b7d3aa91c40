"""6. The leader gets SIGKILL in the middle of a wave of 100 injections.

Two real `controller run` processes share the leader lock on the Nomad twin (TTL 10 s, renew
2 s). 100 meshed jobs are submitted at once; when about a third are injected the leader is
killed with SIGKILL (no release, no drain), and the user updates ten jobs meanwhile.
Invariant: the standby takes over and finishes; every user spec is injected exactly once (the
versions are counted: a controller version always follows a user version, never another
controller version); no user update is lost.

The failover time is measured from the SIGKILL and held to the bound Nomad's lock semantics
give (nomad/locks.go: the TTL timer runs for 2 x TTL from the last renew, then the Lock stays
for LockDelay before invalidateVariableLock frees it; the standby tries every LEADER_RETRY):
at most 2 x TTL + LockDelay + LEADER_RETRY, at least that minus RENEW and LEADER_RETRY.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chaos.harness import Check, Outcome, RequestCounter, wait_until
from chaos.world import (
    job_versions,
    keeps_user_spec,
    no_backends_env,
    sidecar_count,
)
from crds_equivalent.keys import VAR_LEADER
from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.nomad.jobsvc import register
from devstack.testing import injected, stored, user_job
from devstack.vault import start_openbao
from devstack.workload_login import controller_vault_env

JOBS = 100
TTL, RENEW = 10.0, 2.0  # MESH_LEADER_TTL (Nomad refuses lock TTLs under 10 s), MESH_LEADER_RENEW
LOCK_DELAY = TTL  # the controller's LockDelay (controller.app.Tuning.lock_delay: the TTL)
LEADER_RETRY = 2.0  # a standby tries to take the lock this often (Tuning.leader_retry)
FAILOVER_BOUND = 2 * TTL + LOCK_DELAY + LEADER_RETRY
FAILOVER_FLOOR = 2 * TTL + LOCK_DELAY - RENEW
SLACK = 1.5  # the standby's acquire request and the harness's polling
UPDATED = 10
CONTROLLER = str(Path(sys.executable).with_name("controller"))


def holder(twin: NomadTwin) -> str | None:
    var = twin.state.variables.get(("default", VAR_LEADER))
    if not var or not var.get("Lock"):
        return None
    return str((var.get("Items") or {}).get("identity"))


def injected_twice(twin: NomadTwin, job_id: str) -> bool:
    """Two controller versions in a row: the same user spec injected again."""
    history = sorted(
        twin.state.job_versions.get(("default", job_id), []), key=lambda v: v["Version"]
    )
    marks = [injected(v) for v in history]
    return any(a and b for a, b in itertools.pairwise(marks))


async def start_controller(
    twin: NomadTwin, identity: str, log: Path, vault: dict[str, str]
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "MESH_"))}
    env |= (
        no_backends_env()
        | vault
        | {
            "NOMAD_ADDR": twin.url,
            "MESH_HTTP_ADDR": "127.0.0.1:0",
            "MESH_LEADER_TTL": f"{TTL:.0f}s",
            "MESH_LEADER_RENEW": f"{RENEW:.0f}s",
            "MESH_HEARTBEAT_TIMEOUT": "5s",
            "MESH_BACKOFF_BASE": "50ms",
            "MESH_BACKOFF_CAP": "1s",
            "MESH_LOG_FORMAT": "json",
        }
    )
    out = log.open("w")
    try:
        return await asyncio.create_subprocess_exec(
            CONTROLLER, "run", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    finally:
        out.close()


async def run() -> Outcome:
    check = Check()
    twin = await start_nomad_twin(nodes=2, heartbeat_interval=0.2)
    bao = await start_openbao()
    requests = RequestCounter(twin)
    logs = Path(tempfile.mkdtemp(prefix="chaos-s6-"))
    procs: list[asyncio.subprocess.Process] = []
    submitted: dict[str, dict[str, Any]] = {}

    def submit(job: dict[str, Any]) -> None:
        register(twin.state, twin.scheduler, copy.deepcopy(job), "default", False, 0)
        submitted[job["ID"]] = job

    try:
        vault = await controller_vault_env(bao)
        a = await start_controller(twin, "ctl-a", logs / "a.log", vault)
        procs.append(a)
        await wait_until(lambda: holder(twin) is not None, within=30, what="a leads")
        leader_identity = holder(twin)
        b = await start_controller(twin, "ctl-b", logs / "b.log", vault)
        procs.append(b)
        await asyncio.sleep(1.5)  # b is up and standing by
        names = [f"wave{i:03d}" for i in range(JOBS)]
        for name in names:
            submit(user_job(name, {"mesh.tls": "true", "rev": "0"}))
        await wait_until(
            lambda: sum(injected(stored(twin, n)) for n in names) >= JOBS // 3,
            within=60,
            every=0.005,
            what="a third of the wave injected",
        )
        done_at_kill = sum(injected(stored(twin, n)) for n in names)
        a.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await a.wait()
        for name in names[-UPDATED:]:  # the user changes jobs the dead leader may not reach
            submit(user_job(name, {"mesh.tls": "true", "rev": "1"}, count=2))
        await wait_until(
            lambda: holder(twin) not in (None, leader_identity),
            within=FAILOVER_BOUND + 10,
            every=0.05,
            what="standby took the lock",
        )
        took_over = time.monotonic() - killed
        print(
            f"  s6: failover took {took_over:.1f}s after SIGKILL; bound 2*TTL+LockDelay+retry = "
            f"{FAILOVER_BOUND:.0f}s (TTL {TTL:.0f}s, LockDelay {LOCK_DELAY:.0f}s, "
            f"retry {LEADER_RETRY:.0f}s), floor {FAILOVER_FLOOR:.0f}s",
            file=sys.stderr,
        )
        check.that(
            took_over <= FAILOVER_BOUND + SLACK,
            f"failover took {took_over:.1f}s, over the bound {FAILOVER_BOUND:.0f}s",
        )
        check.that(
            took_over >= FAILOVER_FLOOR,
            f"failover took {took_over:.1f}s, before Nomad could free the lock "
            f"({FAILOVER_FLOOR:.0f}s): the lease is not Nomad's",
        )

        def converged() -> bool:
            return all(
                injected(stored(twin, n)) and keeps_user_spec(stored(twin, n), submitted[n])
                for n in names
            )

        await wait_until(converged, within=60, what="the wave finished")
        finished = time.monotonic() - killed
        await asyncio.sleep(2.0)  # anything still in flight lands now, or never
        twice = [n for n in names if injected_twice(twin, n)]
        per_job = [job_versions(twin, n) for n in names]
        check.that(b.returncode is None, "the standby exited")
        check.that(not twice, f"a user spec was injected twice: {twice}")
        check.that(all(sidecar_count(stored(twin, n)) == 1 for n in names), "duplicate sidecar")
        return check.outcome(
            {
                "jobs": JOBS,
                "injected_before_kill": done_at_kill,
                "lock_taken_over_after_s": round(took_over, 1),
                "failover_bound_s": FAILOVER_BOUND,
                "wave_done_after_kill_s": finished,
                "versions_per_job": f"{min(per_job)}..{max(per_job)}",
                "specs_injected_twice": len(twice),
                "user_updates_lost": sum(
                    not keeps_user_spec(stored(twin, n), submitted[n]) for n in names
                ),
                "nomad_calls": requests.total,
            }
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await twin.stop()
        await bao.stop()
