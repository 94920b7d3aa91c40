"""10. OpenBao refuses leaves past the healthy deadline while two running services get meshed.

Two jobs flagged ``mesh.tls`` already run, deployed and marked stable before the controller
looked at them (the un-injected version is the one Nomad would revert to). OpenBao stops
issuing to workloads (the `mesh-workload` policy loses its issue path; a sealed OpenBao would
not do here: the controller grants each job its PKI role before injecting it and grants
nothing while Vault is sealed — scenario 4), then the controller starts, grants and injects
both: the sidecars log in but their certificate templates cannot render,
so the allocations are unhealthy past ``healthy_deadline`` and Nomad fails both deployments —
``hold`` keeps the failed version (no ``auto_revert``), ``flip`` has ``auto_revert`` and Nomad
registers the un-injected version again.
Invariant: while refused, ``hold`` is Degraded/DeploymentFailed and ``flip`` Degraded/Reverted,
each with Nomad's description; the controller's job writes stay within the backoff's bound (no
revert/re-inject fight); once OpenBao issues again both end Ready and serve verified HTTPS
with no human action.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from chaos.harness import Check, Outcome, wait_until
from chaos.world import DEV_TUNING, devstack_world, https_get, meshed_web
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.vault import WORKLOAD_POLICY, VaultClient, VaultConnection
from crds_equivalent.status import ConditionType, Phase
from devstack.up import Devstack

REFUSED = 30.0
NS = 1_000_000_000
JOBS = {"hold": False, "flip": True}  # job -> auto_revert
POLICY: list[str] = []  # the workload policy as bootstrap wrote it, while withdrawn
# Retries 3 s, 6 s, then every 12 s: the production shape (5, 10, 20, 30 min), scaled down.
TUNING = dataclasses.replace(DEV_TUNING, deploy_retry_base=3.0, deploy_retry_cap=12.0)


def job(job_id: str, auto_revert: bool) -> dict[str, Any]:
    spec = meshed_web(job_id)
    spec["TaskGroups"][0]["Update"] = {
        "MaxParallel": 1,
        "MinHealthyTime": 2 * NS,
        "HealthyDeadline": 6 * NS,
        "ProgressDeadline": 0,  # shouldFailEarly: fail at the first unhealthy allocation
        "AutoRevert": auto_revert,
    }
    return spec


def max_writes(seconds: float) -> int:
    """The most writes the backoff allows one job in ``seconds``: the injection, then one retry
    per elapsed delay (3, 6, 12, 12, ...)."""
    writes, elapsed, delay = 1, 0.0, TUNING.deploy_retry_base
    while elapsed + delay <= seconds:
        elapsed += delay
        writes += 1
        delay = min(delay * 2, TUNING.deploy_retry_cap)
    return writes


async def deploy_unmeshed(stack: Devstack, _: VaultClient) -> None:
    client = NomadClient(stack.nomad.url, retry_budget=1.0)
    jobs = NomadJobs(client)
    try:
        for job_id, revert in JOBS.items():
            await jobs.register_job(job(job_id, revert), enforce_index=None)

        async def stable() -> bool:
            for job_id in JOBS:
                found = await jobs.get_job(job_id, "default")
                if not (found and found.get("Stable")):
                    return False
            return True

        await wait_until(stable, within=90, what="both jobs deployed and stable")
    finally:
        await client.close()
    chain_only = 'path "pki_int/cert/ca_chain" {\n  capabilities = ["read"]\n}\n'
    async with VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token)) as root:
        stored = await root.read(f"sys/policies/acl/{WORKLOAD_POLICY}")
        POLICY.append(str((stored or {})["data"]["policy"]))
        await root.write(f"sys/policies/acl/{WORKLOAD_POLICY}", {"policy": chain_only})


async def issue_again(stack: Devstack) -> None:
    """Give the workload policy its issue path back."""
    async with VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token)) as root:
        await root.write(f"sys/policies/acl/{WORKLOAD_POLICY}", {"policy": POLICY.pop()})


async def run() -> Outcome:
    check = Check()
    async with devstack_world(TUNING, before_controller=deploy_unmeshed) as w:
        app = w.app
        refused_at = time.monotonic()
        seen: dict[str, set[str]] = {j: set() for j in JOBS}
        messages: dict[str, str] = {}
        while time.monotonic() - refused_at < REFUSED:
            for job_id in JOBS:
                status = await app.statuses.get("default", job_id)
                rolled = status.condition(ConditionType.ROLLED_OUT) if status else None
                if status is not None and rolled is not None and rolled.status == "False":
                    seen[job_id].add(f"{status.phase}/{rolled.reason}")
                    if status.phase == Phase.DEGRADED:
                        messages[job_id] = status.message
            await asyncio.sleep(0.3)
        writes_refused = sum(app.reconciler.writes.values())
        await issue_again(w.stack)
        issuing_at = time.monotonic()

        async def ready() -> bool:
            for job_id in JOBS:
                status = await app.statuses.get("default", job_id)
                if status is None or status.phase != Phase.READY:
                    return False
            return True

        took = await wait_until(ready, within=150, what="both Ready once OpenBao issues again")
        https = {j: await https_get(w, j) for j in JOBS}
        versions = {}
        for job_id in JOBS:
            stored = await app.jobs.get_job(job_id, "default")
            versions[job_id] = int(stored["Version"]) if stored else -1
        writes = dict(app.reconciler.writes)
        bound = 2 * max_writes(time.monotonic() - refused_at)

        check.that(
            "Degraded/DeploymentFailed" in seen["hold"], f"hold while refused: {seen['hold']}"
        )
        check.that("Degraded/Reverted" in seen["flip"], f"flip while refused: {seen['flip']}")
        check.that(
            "Failed due to unhealthy allocations" in messages.get("hold", ""),
            f"hold's message lacks Nomad's text: {messages.get('hold')!r}",
        )
        check.that(
            "rolling back to job version" in messages.get("flip", ""),
            f"flip's message lacks Nomad's revert text: {messages.get('flip')!r}",
        )
        check.that(sum(writes.values()) <= bound, f"{writes} job writes exceed the bound {bound}")
        check.that(all(code == 200 for code in https.values()), f"HTTPS afterwards: {https}")
        return check.outcome(
            {
                "refused_s": REFUSED,
                "phases_while_refused": {j: sorted(v) for j, v in seen.items()},
                "hold_message": messages.get("hold", "")[:120],
                "flip_message": messages.get("flip", "")[:120],
                "job_writes_while_refused": writes_refused,
                "job_writes": writes,
                "write_bound": bound,
                "job_versions": versions,
                "ready_after_issuing_s": took,
                "since_issuing_s": time.monotonic() - issuing_at,
            }
        )
