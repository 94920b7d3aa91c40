"""12. A periodic meshed job launched 5 times: the controller makes 0 writes to its children.

Nomad derives each launch from the parent (``nomad/periodic.go`` ``deriveJob``: a copy with
``ParentID``, a new ID and Name), so every child carries the parent's sidecar and markers. A
controller that planned children like any job would see their marker hash as stale (it covers
the job's ID and name) and re-register each one, detaching it from its parent and replacing
its running allocation (audit §1).

Invariant: the parent is injected exactly once; each of the 5 children carries the sidecar,
keeps ``ParentID``, and has exactly the one version Nomad created it with (JobModifyIndex ==
CreateIndex); no child gets a status record; the controller's only write is the parent's.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import aiohttp

from chaos.harness import Check, Outcome, wait_until
from chaos.world import sidecar_count, twin_world
from devstack.testing import injected, stored, user_job

LAUNCHES = 5
FAR = {"Enabled": True, "Spec": "0 0 1 1 *", "SpecType": "cron"}  # only forced launches


def periodic_parent(job_id: str) -> dict[str, Any]:
    job = copy.deepcopy(user_job(job_id, {"mesh.tls": "true"}))
    job["Type"] = "batch"
    job["TaskGroups"][0].pop("Update")
    job["Periodic"] = FAR
    return job


async def run() -> Outcome:
    check = Check()
    async with twin_world() as w, aiohttp.ClientSession() as http:
        w.submit_now(periodic_parent("nightly"))
        await wait_until(lambda: injected(stored(w.twin, "nightly")), within=20, what="injected")
        for _ in range(LAUNCHES):
            # A child's ID is its launch second (derivedJobID): one launch per second.
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)
            url = f"{w.twin.url}/v1/job/nightly/periodic/force"
            async with http.post(url) as resp:
                check.that(resp.status == 200, f"force launch answered {resp.status}")

        def children() -> list[dict[str, Any]]:
            return [j for j in w.twin.state.jobs.values() if j.get("ParentID") == "nightly"]

        await wait_until(lambda: len(children()) == LAUNCHES, within=20, what="5 children")
        # Let the controller see every child's events and allocation changes.
        await wait_until(
            lambda: w.app.source.last_index >= w.twin.state.index and not len(w.app.queue),
            within=20,
            what="controller settled",
        )
        await asyncio.sleep(1.0)  # a debounce or two: a late write would land now
        kids = children()
        child_versions = sum(
            len(w.twin.state.job_versions.get(("default", c["ID"]), [])) for c in kids
        )
        rewritten = [c["ID"] for c in kids if c["JobModifyIndex"] != c["CreateIndex"]]
        records = [
            c["ID"] for c in kids if await w.app.statuses.get("default", c["ID"]) is not None
        ]
        with_sidecar = sum(sidecar_count(c) == 1 for c in kids)
        parent_writes = sum(w.app.reconciler.writes.values())
        parent = stored(w.twin, "nightly") or {}
        check.that(len(kids) == LAUNCHES, f"{len(kids)} children for {LAUNCHES} launches")
        check.that(not rewritten, f"children written after their creation: {rewritten}")
        check.that(child_versions == LAUNCHES, f"{child_versions} versions for {LAUNCHES} children")
        check.that(
            with_sidecar == LAUNCHES, f"{with_sidecar}/{LAUNCHES} children carry the sidecar"
        )
        check.that(all(c["ParentID"] == "nightly" for c in kids), "a child lost its ParentID")
        check.that(not records, f"children with a status record of their own: {records}")
        check.that(parent_writes == 1, f"{parent_writes} controller writes (want 1: the parent)")
        return check.outcome(
            {
                "launches": LAUNCHES,
                "children_with_sidecar": with_sidecar,
                "controller_writes_to_children": len(rewritten),
                "child_versions": child_versions,
                "controller_writes": parent_writes,
                "parent_versions": int(parent.get("Version", -1)) + 1,
            }
        )
