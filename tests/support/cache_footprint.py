"""Bytes per cached job: the watch-fed cache after a fill of N realistic meshed jobs.

``python -m tests.support.cache_footprint [N]`` runs the real controller against the Nomad twin
until one meshed job (two instances) has rolled out, takes that job, its allocation stubs and
its deployment as Nomad serves them (injected, canonicalised, with TaskStates), makes N copies
under other IDs, and measures with tracemalloc what the cache holds after filling from them:
the decoded job (kept raw, not copied), its trimmed allocations, its deployment and the
bookkeeping. A measurement, not a test: it prints the figures (README, "Design decisions").
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tracemalloc
import uuid
from typing import Any

import aiohttp

from controller.nomad.cache import JobCache
from crds_equivalent.jobkey import JobKey
from devstack.nomad import start_nomad_twin
from devstack.testing import User, running, settings_for, user_job
from reconcilers.mesh.interest import MESH_INTEREST
from tests.support.waiting import eventually


async def sample() -> tuple[bytes, bytes, bytes]:
    """One rolled-out meshed job as Nomad serves it: (job, its allocation stubs, deployments)."""
    twin = await start_nomad_twin(nodes=2, heartbeat_interval=0.2)
    user = User(twin)
    try:
        job = user_job("tmpl", {"mesh.tls": "true"}, count=2)
        for group in job["TaskGroups"]:
            for service in group.get("Services") or []:
                service.pop("Checks", None)
        async with running(settings_for(twin)) as (app, _):
            await user.submit(job)

            async def done() -> bool:
                deps = app.cache.deployments_of(JobKey("default", "tmpl"))
                return bool(deps) and deps[0].get("Status") == "successful"

            await eventually(done, what="rolled out", within=30)
        async with aiohttp.ClientSession() as http:
            got = []
            for path in ("/v1/job/tmpl", "/v1/allocations", "/v1/deployments"):
                async with http.get(twin.url + path) as resp:
                    got.append(await resp.read())
        return got[0], got[1], got[2]
    finally:
        await user.close()
        await twin.stop()


def copies(raw: bytes, n: int) -> list[bytes]:
    text = raw.decode()
    return [text.replace("tmpl", f"job-{i:05d}").encode() for i in range(n)]


def varied(doc: dict[str, Any], i: int) -> dict[str, Any]:
    """Copy ``i`` made less alike than a rename: its own image, team, count and environment,
    so the packed size is not flattered by copies that differ only in their ID."""
    doc["Meta"] = {**(doc.get("Meta") or {}), "team": f"team-{i % 37}", "owner": f"u{i * 7919}"}
    for group in doc["TaskGroups"]:
        group["Count"] = 1 + i % 5
        for task in group["Tasks"]:
            if task["Name"] == "app":
                task["Config"] = {**task["Config"], "image": f"registry.example/svc-{i}:{i % 13}"}
                task["Env"] = {"RELEASE": f"{i}.{i % 11}", "REGION": f"r{i % 4}"}
    return doc


def fill(cache: JobCache, jobs: list[bytes], allocs: list[bytes], deps: list[bytes]) -> None:
    decoded = [varied(json.loads(b), i) for i, b in enumerate(jobs)]
    cache.apply_listing(decoded)  # a LIST stub has these fields and more
    for doc in decoded:
        cache.apply_read(JobKey(doc["Namespace"], doc["ID"]), doc)
    cache.end_listing([JobKey(d["Namespace"], d["ID"]) for d in decoded], 1 << 30)
    stubs: list[dict[str, Any]] = []
    for blob in allocs:
        for a in json.loads(blob):
            a["ID"] = str(uuid.uuid4())  # as random as Nomad's
            stubs.append(a)
    cache.replace_allocations(stubs, 1 << 30)
    listed: list[dict[str, Any]] = []
    for blob in deps:
        for d in json.loads(blob):
            d["ID"] = str(uuid.uuid4())
            listed.append(d)
    cache.replace_deployments(listed, 1 << 30)


def measure(n: int) -> dict[str, float]:
    job, allocs, deps = asyncio.run(sample())
    raw_jobs, raw_allocs, raw_deps = copies(job, n), copies(allocs, n), copies(deps, n)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    fill(cache, raw_jobs, raw_allocs, raw_deps)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "jobs": n,
        "allocations": len(cache.allocations),
        "deployments": len(cache.deployments),
        "job_json_bytes": len(job),
        "alloc_stub_json_bytes_per_job": len(allocs),
        "packed_job_bytes": len(cache.jobs[JobKey("default", "job-00001")].job or b""),
        "bytes_per_cached_job": round((after - before) / n),
        "mb_at_10k": round((after - before) / n * 10_000 / 2**20, 1),
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=2))
