"""``python -m bench --quick | --full``: run the benchmarks, write the results, print the summary.

--quick (``make bench-quick``, <= 90 s): the control-plane cold start of 1,000 jobs against
its ceiling (then until quiet, for calls and CPU per new job), and the data plane at c32
keep-alive (every path) and c1 keep-alive (direct and ours), 1 s per wrk run, 3 interleaved
rounds. Results go to ``bench/results/quick/``.
--report JSON: rebuild BENCHMARKS.md and the plots from a saved full result.
--full (``make bench``): N = 100, 1,000 and 10,000 with every control-plane phase, every data
plane load (c1/c32, keep-alive and a new connection per request), 3 s runs, the tuning
variants; writes ``bench/results/<date>.json``, the PNGs and BENCHMARKS.md.
--cp-only N[,N...]: every control-plane phase for those N, no data plane, nothing published
(``bench/results/quick/cp-only.json``): for working on the control-plane benchmark.
The last line printed is always the summary line (see ``bench.report.final_line``). The exit
status is 3 when the 10k run lost a leader lease (DESIGN §10: none may be lost).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil

from bench import control_plane, data_plane, dp_egress, plots, report, tools
from bench.notes import FINDINGS, NOTES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def environment(caddy: str | None) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        **tools.versions(caddy),
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def plans(full: bool, caddy: str | None) -> tuple[control_plane.Plan, data_plane.Plan]:
    if full:
        cp = control_plane.Plan(sizes=(100, 1000, 10_000), full=True)
        dp = data_plane.Plan(
            seconds=3,
            rounds=3,
            loads=(
                data_plane.KEEPALIVE_1,
                data_plane.KEEPALIVE_32,
                data_plane.CLOSE_1,
                data_plane.CLOSE_32,
            ),
            c1_paths=None,
            tuning=True,
            caddy=caddy,
        )
    else:
        cp = control_plane.Plan(sizes=(1000,), full=False)
        dp = data_plane.Plan(
            seconds=1,
            rounds=3,
            loads=(data_plane.KEEPALIVE_32, data_plane.KEEPALIVE_1),
            c1_paths=("direct", "ours"),
            tuning=False,
            caddy=caddy,
        )
    return cp, dp


async def survived(phase: str, run: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """A data-plane phase's results, or its error: a phase that breaks must not cost the
    results of the half hour before it (the egress row once did)."""
    try:
        return await run
    except Exception as exc:  # recorded in the results and in BENCHMARKS.md
        say(f"{phase} FAILED: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


async def main_async(full: bool) -> dict[str, Any]:
    tools.ensure_apt()
    caddy = tools.caddy(install=full)  # a 50 MB wheel: not inside bench-quick's 60 s
    started = time.monotonic()
    env = environment(caddy)
    cp_plan, dp_plan = plans(full, caddy)
    work = Path(tempfile.mkdtemp(prefix="bench-cp-"))
    say(f"control plane: N = {', '.join(map(str, cp_plan.sizes))} (logs in {work})")
    cp = await control_plane.run(cp_plan, work)
    # Kept before the data plane starts: a later phase that fails must not lose a half hour
    # of control-plane results (it did once, in the egress row).
    partial = work / "control-plane.json"
    partial.write_text(json.dumps(cp, indent=1))
    say(f"control plane results kept in {partial}")
    say("data plane")
    dp = await survived("data plane", data_plane.run_all(dp_plan, say))
    extra: dict[str, Any] = {}
    if full:  # issue 18's row: caller sidecar -> server sidecar (mTLS) against direct
        extra["data_plane_egress"] = egress = await survived(
            "egress row", dp_egress.run_all(dp_plan, say)
        )
        if "error" not in egress:
            say(dp_egress.summary_line(egress))
    env["load_average_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make bench" if full else "make bench-quick",
        "mode": "full" if full else "quick",
        "seconds": round(time.monotonic() - started, 1),
        "environment": env,
        "control_plane": cp,
        "data_plane": dp,
        **extra,
    }


async def cp_only(sizes: tuple[int, ...]) -> dict[str, Any]:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-cp-"))
    say(f"control plane only: N = {', '.join(map(str, sizes))} (logs in {work})")
    cp = await control_plane.run(control_plane.Plan(sizes=sizes, full=True), work)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m bench --cp-only",
        "mode": "cp-only",
        "seconds": round(time.monotonic() - started, 1),
        "control_plane": cp,
        "data_plane": {},
        "results_file": "bench/results/quick/cp-only.json",
    }


def lock_check_failed(result: dict[str, Any]) -> bool:
    check = result.get("control_plane", {}).get("lock_check")
    if check and not check["ok"]:
        say(f"CHECK FAILED: {check['lock_losses']} leader lease(s) lost at N={check['n']}")
        return True
    return False


def publish_full(result: dict[str, Any], stem: str | None = None) -> None:
    """Write the result, the plots and BENCHMARKS.md; ``stem`` names the result file (default:
    the run's date), so ``--report`` of a second run of one day rewrites that run's file."""
    stem = stem or result["date"][:10]
    result["results_file"] = f"bench/results/{stem}.json"
    figures: dict[str, str] = {}
    if tools.ensure_matplotlib():
        cp, dp = result["control_plane"], result["data_plane"]
        figures["cp scale curve"] = plots.scale_curve(cp, RESULTS / "scale-curve.png").name
        if curves := plots.churn_curves(cp):
            figures["cp churn latency CDF"] = plots.churn_cdf(
                curves, RESULTS / "churn-latency-cdf.png"
            ).name
        for load in ("c1-keepalive", "c32-keepalive", "c32-close") if "results" in dp else ():
            figures[f"dp latency CDF {load}"] = plots.latency_cdfs(
                dp, load, RESULTS / f"latency-cdf-{load}.png"
            ).name
    figures = {k: f"bench/results/{v}" for k, v in figures.items()}
    report.write_json(result, RESULTS, stem)
    (ROOT / "BENCHMARKS.md").write_text(report.markdown(result, figures, NOTES, FINDINGS))
    say(f"wrote {result['results_file']}, BENCHMARKS.md and {len(figures)} plots")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="<= 90 s: N=1000, short wrk runs")
    mode.add_argument("--full", action="store_true", help="N=100/1k/10k, all phases, tuning")
    mode.add_argument(
        "--report", metavar="JSON", help="rewrite BENCHMARKS.md and the plots from a result"
    )
    mode.add_argument("--cp-only", metavar="N[,N]", help="control plane only, every phase")
    args = parser.parse_args(argv)
    if args.cp_only:
        result = asyncio.run(cp_only(tuple(int(n) for n in args.cp_only.split(","))))
        report.write_json(result, RESULTS / "quick", "cp-only")
        failed = lock_check_failed(result)
        print(report.final_line(result), flush=True)
        return 3 if failed else 0
    if args.report:
        result = json.loads(Path(args.report).read_text())
        publish_full(result, Path(args.report).stem)
        print(report.final_line(result), flush=True)
        return 0
    try:
        result = asyncio.run(main_async(args.full))
    except tools.MissingTool as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.full:
        publish_full(result)
    else:
        result["results_file"] = "bench/results/quick/latest.json"
        report.write_json(result, RESULTS / "quick", "latest")
    say(f"done in {result['seconds']} s")
    failed = lock_check_failed(result)
    print(report.final_line(result), flush=True)
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
