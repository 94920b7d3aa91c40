"""The Nomad twin as its own process for the control-plane benchmark, with a request counter.

``python -m bench.twin --nodes N`` prints one JSON line ``{"url": ..., "pid": ...}`` once it
listens, and serves until SIGTERM/SIGINT. Besides Nomad's API it answers three read-only
benchmark endpoints (never counted):

- ``GET /_bench/requests``: how many requests the twin served, by ``METHOD kind`` (kind is the
  route with IDs removed: ``job``, ``job/allocations``, ``var``, ``jobs``, ...);
- ``GET /_bench/jobs?namespace=NS``: per job its JobModifyIndex, CreateIndex, SubmitTime,
  Version and the marker (``mesh.tls.injected``) of every group, read straight from the store;
- ``GET /_bench/settled``: pending evaluations, pending allocations, running deployments.

The benchmark reads the world this way so that watching convergence costs the twin almost
nothing and never shows up in the counts it is measuring.
"""

from __future__ import annotations

import argparse
import asyncio
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
        self.twin: NomadTwin | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_bench/"):
            return self._bench(request)
        if request.path.startswith("/v1/"):
            self.requests[f"{request.method} {route_kind(request.path)}"] += 1
        return await handler(request)

    def _bench(self, request: web.Request) -> web.StreamResponse:
        what = request.path.removeprefix("/_bench/")
        if what == "requests":
            return web.json_response(dict(self.requests))
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
    try:
        await stop.wait()
    finally:
        # Simulated drivers run no processes, so there is nothing to stop gracefully; stopping
        # tens of thousands of simulated allocations one by one would only cost time.
        shutil.rmtree(data_dir, ignore_errors=True)
        os._exit(0)


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
