"""Bytes per meshed job for the whole controller: everything it keeps once N jobs converged.

``python -m tests.support.controller_footprint [N] [--frames K]`` seeds N of the benchmark's
jobs (``bench.jobs``) into the benchmark's Nomad twin (its own process, so the twin's memory is
not counted), starts a real OpenBao for the per-job PKI roles, and runs the controller in this
process, traced by tracemalloc from just before the ``App`` is built. Once every job carries
the current marker, its rollout is over and the status writes have stopped, it prints:

- ``base``: this process's RSS after the imports and after startup with no job yet;
- ``bytes_per_job``: traced bytes still held at convergence, divided by N;
- ``peak_bytes_per_job``: the most traced bytes held at any moment while the jobs arrived and
  converged, divided by N: what is held for a while by many jobs at once (the allocator keeps
  that high-water as RSS);
- ``by_line``: those bytes per job by the line of our code (controller/, reconcilers/,
  crds_equivalent/) nearest to each allocation, so a library's allocation is charged to the
  caller that keeps it;
- ``by_type``: live objects per job by type (shallow ``sys.getsizeof``), against a count taken
  before the ``App`` existed.

A measurement, not a test: the figures go in BENCHMARKS.md; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import cp_phases as phases
from bench.jobs import job_ids
from bench.procs import Api, TwinProc
from controller.app import App, Tuning
from controller.config import Settings
from crds_equivalent.jobkey import JobKey
from devstack.vault import start_openbao
from devstack.workload_login import controller_vault_env

OURS = ("/controller/", "/reconcilers/", "/crds_equivalent/")
CODECS = ("/controller/runtime/jsonwire.py",)
"""Our modules that only translate (JSON in and out): an allocation is charged to their caller,
the line that keeps what they made."""
NAMESPACE = "bench"
SEED = 8  # the benchmark's (bench.control_plane.Plan.seed)
HELD = (set, list, dict, tuple, JobKey)  # the types ``by_holder`` breaks down (JobKey is a tuple)


def rss_kb() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in kB."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def types_now() -> collections.Counter[str]:
    """Shallow bytes by type of every object the collector tracks (containers, instances)."""
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        with contextlib.suppress(Exception):
            sizes[type(obj).__qualname__] += sys.getsizeof(obj)
    return sizes


def largest(kinds: tuple[type, ...], top: int) -> list[str]:
    """The biggest containers of those kinds alive now, each with a sample element: what a
    by-type row alone does not say (which set, which dict)."""
    found = sorted(
        (o for o in gc.get_objects() if type(o) in kinds), key=sys.getsizeof, reverse=True
    )[:top]
    rows = []
    for obj in found:
        sample = next(iter(obj), None) if obj else None
        rows.append(
            f"{type(obj).__name__} len={len(obj)} {sys.getsizeof(obj)} B e.g. {sample!r:.80}"
        )
    return rows


def owners(kinds: tuple[type, ...], n: int, top: int) -> dict[str, int]:
    """Shallow bytes per job of every object of those kinds, by who holds it (the referrer's
    type, and the holder of that referrer when it is a dict or a list): what the by-type rows
    are made of. Objects held by more than one are charged to one of them."""
    holder: dict[int, object] = {}
    everything = gc.get_objects()
    for obj in everything:
        for ref in gc.get_referents(obj):
            if isinstance(ref, (dict, list, set, tuple, *kinds)):
                holder.setdefault(id(ref), obj)
    totals: collections.Counter[str] = collections.Counter()

    def name(obj: object | None) -> str:
        return "none" if obj is None else type(obj).__qualname__

    for obj in everything:
        if type(obj) not in kinds:
            continue
        first = holder.get(id(obj))
        second = holder.get(id(first)) if isinstance(first, (dict, list, tuple, set)) else None
        third = holder.get(id(second)) if isinstance(second, (dict, list, tuple, set)) else None
        where = " < ".join(name(o) for o in (first, second, third) if o is not None)
        totals[f"{type(obj).__qualname__} in {where or 'none'}"] += sys.getsizeof(obj)
    return {k: round(v / n) for k, v in totals.most_common(top)}


def our_frame(trace: tracemalloc.Trace) -> str:
    """The innermost frame of our code in an allocation's traceback ("other" when none).

    A tracemalloc traceback lists the oldest call first, so it is walked from its end: walked
    from the start, ``--frames`` above 1 charged every allocation to the outermost of our
    frames (the event pump, a reconcile's entry) instead of the line that keeps the object."""
    for frame in reversed(trace.traceback):  # most recent call first
        if any(part in frame.filename for part in OURS) and not any(
            codec in frame.filename for codec in CODECS
        ):
            short = frame.filename.split("/nomad-tls-mesh/")[-1]
            for root in OURS:
                if root in frame.filename:
                    short = root.strip("/") + "/" + frame.filename.split(root, 1)[1]
                    break
            return f"{short}:{frame.lineno}"
    return "other"


def by_line(snapshot: tracemalloc.Snapshot, n: int, top: int) -> dict[str, int]:
    totals: collections.Counter[str] = collections.Counter()
    for trace in snapshot.traces:
        totals[our_frame(trace)] += trace.size
    return {k: round(v / n) for k, v in totals.most_common(top)}


def transient(
    fullest: tracemalloc.Snapshot, end: tracemalloc.Snapshot, n: int, top: int
) -> dict[str, int]:
    """Bytes per job by line (as ``by_line``) held in the fullest snapshot beyond the end's."""
    totals: collections.Counter[str] = collections.Counter()
    for trace in fullest.traces:
        totals[our_frame(trace)] += trace.size
    for trace in end.traces:
        totals[our_frame(trace)] -= trace.size
    return {k: round(v / n) for k, v in totals.most_common(top)}


def by_file(snapshot: tracemalloc.Snapshot, n: int, top: int) -> dict[str, int]:
    """Bytes per job by the file that allocated them (libraries included): what the "other"
    row of ``by_line`` is made of."""
    stats = snapshot.statistics("filename")[:top]
    return {s.traceback[0].filename.split("site-packages/")[-1]: round(s.size / n) for s in stats}


def settings(twin_url: str, vault_env: dict[str, str]) -> Settings:
    """The benchmark's controller settings (bench.procs.ControllerProc), in process."""
    return Settings.from_env(
        {
            "NOMAD_ADDR": twin_url,
            "MESH_HTTP_ADDR": "127.0.0.1:0",
            "MESH_NAMESPACES": NAMESPACE,
            "MESH_HEALTH_INTERVAL": "1h",
            "MESH_RESYNC_INTERVAL": "1h",
            "MESH_WORKERS": "4",
            "MESH_LOG_FORMAT": "json",
            # tracemalloc slows this process several times over: a lease and call timeouts
            # that a shared, loaded machine cannot make the run lose
            "MESH_LEADER_TTL": "120s",
            "MESH_LEADER_RENEW": "10s",
            **vault_env,
        }
    )


async def converged(api: Api, n: int) -> bool:
    jobs = await api.jobs(NAMESPACE)
    return sum(phases.converged(j) for j in jobs.values()) == n


class Fullest:
    """The snapshot taken when the most was traced, of those taken every 2 s while the jobs
    converge: what was held then and is not at the end is what many jobs hold at once for a
    while (the heap's high-water, which the process keeps as RSS)."""

    def __init__(self) -> None:
        self.traced = 0
        self.snapshot: tracemalloc.Snapshot | None = None

    def sample(self) -> None:
        traced = tracemalloc.get_traced_memory()[0]
        if traced > self.traced:
            self.traced, self.snapshot = traced, tracemalloc.take_snapshot()


async def quiet(app: App, api: Api, n: int, within: float, fullest: Fullest) -> None:
    """Every job injected, the twin idle, the mesh queue empty and no status write pending,
    twice in a row 2 s apart (status writes are coalesced)."""
    deadline = time.monotonic() + within
    calm = 0
    while calm < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not quiet within {within}s")
        await asyncio.sleep(2)
        fullest.sample()
        st = await api.call("GET", "/_bench/settled")
        busy = st["evals_pending"] or st["allocs_pending"] or st["deployments_running"]
        queued = len(app.queue) + len(app.queue.in_flight) + app.queue.waiting
        pending = any(not s.idle for s in app.statuses._slots.values())
        calm = calm + 1 if not (busy or queued or pending) and await converged(api, n) else 0


async def measure(n: int, frames: int, top: int) -> dict[str, Any]:
    gc.collect()
    out: dict[str, Any] = {"jobs": n, "rss_kb_after_imports": rss_kb()["VmRSS"]}
    twin = TwinProc(nodes=max(3, n // 100))
    api = Api(twin.url)
    with tempfile.TemporaryDirectory() as tmp:
        bao = await start_openbao(data_dir=tmp)
        try:
            vault_env = await controller_vault_env(bao)
            await phases.seed(api, NAMESPACE, job_ids(0), SEED)  # the namespace only
            gc.collect()
            types0 = types_now()
            tracemalloc.start(frames)
            traced0 = tracemalloc.get_traced_memory()[0]
            app = App(
                settings(twin.url, vault_env),
                tuning=Tuning(handle_signals=False, nomad_timeout=60.0, reconcile_timeout=300.0),
            )
            task = asyncio.create_task(app.run())
            await app.http.started.wait()
            while not app.source.synced.is_set():
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            gc.collect()
            out["rss_kb_started_no_jobs"] = rss_kb()["VmRSS"]
            out["traced_bytes_started_no_jobs"] = tracemalloc.get_traced_memory()[0] - traced0
            tracemalloc.reset_peak()
            started = time.monotonic()
            await phases.seed(api, NAMESPACE, job_ids(n), SEED)
            fullest = Fullest()
            await quiet(app, api, n, within=max(300.0, n * 0.5), fullest=fullest)
            out["converged_s"] = round(time.monotonic() - started, 1)
            peak = tracemalloc.get_traced_memory()[1] - traced0
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] - traced0
            snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
            out["rss_kb_converged"] = rss_kb()["VmRSS"]
            out["bytes_per_job"] = round((traced - out["traced_bytes_started_no_jobs"]) / n)
            out["mb_at_10k"] = round(out["bytes_per_job"] * 10_000 / 2**20, 1)
            started_bytes = out["traced_bytes_started_no_jobs"]
            out["peak_bytes_per_job"] = round((peak - started_bytes) / n)
            out["by_line"] = by_line(snapshot, n, top)
            if fullest.snapshot is not None:
                out["held_at_fullest_not_at_end"] = transient(fullest.snapshot, snapshot, n, top)
            out["by_file"] = by_file(snapshot, n, top)
            grown = types_now() - types0
            out["by_type"] = {k: round(v / n) for k, v in grown.most_common(top)}
            out["largest_containers"] = largest((set, dict, list), 15)
            out["by_holder"] = owners(HELD, n, top)
            app.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
            await app.close()
        finally:
            await api.close()
            twin.stop()
            await bao.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="?", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc traceback depth")
    parser.add_argument("--top", type=int, default=30, help="rows per breakdown")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.jobs, args.frames, args.top)), indent=2))


if __name__ == "__main__":
    main()
