"""The Nomad twin as its own process for the control-plane benchmark, with a request counter.

``python -m bench.twin --nodes N`` prints one JSON line ``{"url": ..., "pid": ...}`` once it
listens, and serves until SIGTERM/SIGINT. Besides Nomad's API it answers three read-only
benchmark endpoints (never counted):

- ``GET /_bench/requests``: how many requests the twin served, by ``METHOD kind`` (kind is the
  route with IDs removed: ``job``, ``job/allocations``, ``var``, ``jobs``, ...);
- ``GET /_bench/jobs?namespace=NS``: per job its JobModifyIndex, CreateIndex, SubmitTime,
  Version and the marker (``mesh.tls.injected``) of every group, read straight from the store;
- ``GET /_bench/settled``: pending evaluations, pending allocations, running deployments;
- ``GET /_bench/registers?namespace=NS``: every register the twin applied in NS, in order
  (job, Version, SubmitTime, the user's ``revision`` meta, the groups' markers). Nomad keeps
  only 6 versions of a job, so under churn ``/v1/job/:id/versions`` forgets what this keeps;
- ``GET /_bench/locks``: how many times a Variable lock was granted (``?lock-acquire`` answered
  200), by Variable path: each grant starts a leadership term, so grants - 1 = terms lost.

Lock operations are counted as their own kind (``PUT var lock-renew``), apart from the status
Variable writes they would otherwise be mixed with.

The benchmark reads the world this way so that watching convergence costs the twin almost
nothing and never shows up in the counts it is measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from crds_equivalent import keys
from devstack.nomad import NomadTwin, start_nomad_twin

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


LOCK_OPS = ("lock-acquire", "lock-renew", "lock-release")


def request_kind(request: web.Request) -> str:
    """``METHOD kind``, with a Variable lock operation named after its query flag."""
    kind = f"{request.method} {route_kind(request.path)}"
    if kind == "PUT var":
        op = next((op for op in LOCK_OPS if op in request.query), None)
        if op:
            return f"{kind} {op}"
    return kind


def route_kind(path: str) -> str:
    """``/v1/job/web/allocations`` -> ``job/allocations``; IDs and variable paths dropped."""
    parts = [p for p in path.split("/") if p][1:]  # drop "v1"
    if not parts:
        return "/"
    head = parts[0]
    if head == "job" and len(parts) > 2:
        return f"job/{parts[-1]}"
    if head in ("job", "var", "allocation", "evaluation", "deployment", "namespace"):
        return head
    return "/".join(parts[:2])


class BenchObserver:
    """Counts requests and serves the ``/_bench/`` reads over the twin's state."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.lock_grants: Counter[str] = Counter()
        self.registers: list[dict[str, Any]] = []
        self.twin: NomadTwin | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_bench/"):
            return self._bench(request)
        if not request.path.startswith("/v1/"):
            return await handler(request)
        kind = request_kind(request)
        self.requests[kind] += 1
        response = await handler(request)
        if kind == "PUT var lock-acquire" and response.status == 200:
            self.lock_grants[request.path.removeprefix("/v1/var/")] += 1
        if kind == "POST job" and response.status == 200:
            self._remember_register(request)
        return response

    def _remember_register(self, request: web.Request) -> None:
        """Read the version just stored (no await since the handler returned, so it is the
        one this request wrote)."""
        assert self.twin is not None
        ns = request.query.get("namespace", "default")
        job_id = request.path.split("/")[3]  # /v1/job/<id>: aiohttp's path is decoded
        job = self.twin.state.jobs.get((ns, job_id))
        if job is None:
            return
        self.registers.append(
            {
                "ns": ns,
                "ID": job_id,
                "Version": job["Version"],
                "SubmitTime": job["SubmitTime"],
                "revision": (job.get("Meta") or {}).get("revision"),
                "markers": [
                    (g.get("Meta") or {}).get(keys.INJECTED_GROUP_META, "")
                    for g in job["TaskGroups"]
                ],
            }
        )

    def _bench(self, request: web.Request) -> web.StreamResponse:
        what = request.path.removeprefix("/_bench/")
        if what == "requests":
            return web.json_response(dict(self.requests))
        if what == "locks":
            return web.json_response(dict(self.lock_grants))
        if what == "registers":
            ns = request.query.get("namespace", "default")
            return web.json_response([r for r in self.registers if r["ns"] == ns])
        if self.twin is None:
            return web.json_response({"error": "twin not started"}, status=503)
        if what == "jobs":
            return web.json_response(self.jobs(request.query.get("namespace", "default")))
        if what == "settled":
            return web.json_response(self.settled())
        return web.json_response({"error": f"unknown {what}"}, status=404)

    def jobs(self, namespace: str) -> dict[str, Any]:
        assert self.twin is not None
        out = {}
        for (ns, job_id), job in self.twin.state.jobs.items():
            if ns != namespace:
                continue
            out[job_id] = {
                "JobModifyIndex": job["JobModifyIndex"],
                "CreateIndex": job["CreateIndex"],
                "SubmitTime": job["SubmitTime"],
                "Version": job["Version"],
                "markers": [
                    (g.get("Meta") or {}).get(keys.INJECTED_GROUP_META, "")
                    for g in job["TaskGroups"]
                ],
            }
        return out

    def settled(self) -> dict[str, int]:
        assert self.twin is not None
        st = self.twin.state
        return {
            "evals_pending": sum(1 for e in st.evals.values() if e["Status"] == "pending"),
            "allocs_pending": sum(
                1
                for a in st.allocs.values()
                if a["ClientStatus"] == "pending" and a["DesiredStatus"] == "run"
            ),
            "deployments_running": sum(
                1 for d in st.deployments.values() if d["Status"] == "running"
            ),
            "jobs": len(st.jobs),
            "allocs": len(st.allocs),
            "index": st.index,
        }


async def serve(nodes: int, port: int, data_dir: str) -> None:
    observer = BenchObserver()
    twin = await start_nomad_twin(
        port=port,
        nodes=nodes,
        heartbeat_interval=10.0,
        middlewares=[observer.middleware],
        data_dir=data_dir,
    )
    observer.twin = twin
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"url": twin.url}), flush=True)
    freezer = asyncio.create_task(_freeze_survivors())
    try:
        await stop.wait()
    finally:
        freezer.cancel()
        # Simulated drivers run no processes, so there is nothing to stop gracefully; stopping
        # tens of thousands of simulated allocations one by one would only cost time.
        shutil.rmtree(data_dir, ignore_errors=True)
        os._exit(0)


async def _freeze_survivors(every: float = 5.0) -> None:
    """Move what survived into the collector's permanent generation every few seconds.

    At 10k jobs the twin's heap holds tens of millions of objects (4 GB); a full collection of
    it stops the one event loop that answers every request, the leader lock's renewals too,
    for as long as the scan takes. Nomad's Go collector runs concurrently with its handlers, so
    such a stall is the twin's, not Nomad's; frozen objects are never scanned again."""
    while True:
        await asyncio.sleep(every)
        gc.freeze()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.twin")
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    # Allocation directories on tmpfs: the twin makes them even for simulated tasks, and on
    # this machine's disk a mkdir costs ~250 us against ~7 us on tmpfs.
    shm = Path("/dev/shm")
    data_dir = tempfile.mkdtemp(prefix="bench-twin-", dir=shm if shm.is_dir() else None)
    asyncio.run(serve(args.nodes, args.port, data_dir))
    sys.exit(0)


if __name__ == "__main__":
    main()
