"""Results out: the JSON file, the one-line summary, and BENCHMARKS.md with its tables.

The final line is a contract (``make bench-quick`` ends with it)::

    control-plane ratio=0.62  data-plane ratio_vs_best_peer=0.91  added_p50_us=31
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.dp_egress import table_lines as egress_lines
from bench.targets import against_targets


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def final_line(result: dict[str, Any]) -> str:
    cp = result.get("control_plane", {})
    dp = result.get("data_plane", {})
    added = dp.get("added_p50_us")
    return (
        f"control-plane ratio={_fmt(cp.get('ratio'), '.2f')}  "
        f"data-plane ratio_vs_best_peer={_fmt(dp.get('ratio_vs_best_peer'), '.2f')}  "
        f"added_p50_us={'n/a' if added is None else round(added)}"
    )


def write_json(result: dict[str, Any], directory: Path, stem: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    return path


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _cp_tables(cp: dict[str, Any]) -> list[str]:
    points = sorted(cp["points"], key=lambda p: p["n"])
    lines = ["### Cold start against the ceiling (scale curve)", ""]
    lines += _table(
        ["N", "ceiling jobs/s", "cold start s", "jobs/s", "ratio", "startup s",
         "jobs/s after 1st write", "peak RSS MB", "CPU s / 1000 jobs"],
        [
            [p["n"], p["ceiling"]["jobs_per_s"], p["cold_start"]["seconds"],
             p["cold_start"]["jobs_per_s"], p["cold_start"]["ratio_to_ceiling"],
             p["cold_start"]["startup_s"], p["cold_start"]["jobs_per_s_after_first_write"],
             p["cold_start"]["peak_rss_mb"], p["per_new_job"]["cpu_s_per_1000_jobs"]]
            for p in points
        ],
    )  # fmt: skip
    lines += ["CPU share (fraction of one core) while measuring:", ""]
    lines += _table(
        ["N", "ceiling: twin", "ceiling: driver", "cold start: twin", "cold start: controller"],
        [
            [p["n"], p["ceiling"]["twin_cpu_share"], p["ceiling"]["driver_cpu_share"],
             p["cold_start"]["twin_cpu_share"], p["cold_start"]["controller_cpu_share"]]
            for p in points
        ],
    )  # fmt: skip
    with_calls = [p for p in points if "calls" in p["per_new_job"]]
    if with_calls:
        kinds = sorted({k for p in with_calls for k in p["per_new_job"]["calls"]})
        lines += ["### API calls per newly meshed job (spawn until quiet)", ""]
        lines += _table(
            ["N", *kinds, "total"],
            [
                [p["n"], *(p["per_new_job"]["calls"].get(k, 0) for k in kinds),
                 p["per_new_job"]["calls_total"]]
                for p in with_calls
            ],
        )  # fmt: skip
    resyncs = [p for p in points if "resync" in p]
    if resyncs:
        lines += ["### Resync of N converged jobs", ""]
        lines += _table(
            ["N", "duration s", "job writes", "other writes", "calls / job", "controller CPU s"],
            [
                [p["n"], p["resync"]["seconds"], p["resync"]["job_writes"],
                 json.dumps({k: v for k, v in p["resync"]["writes"].items() if k != "POST job"}),
                 p["resync"]["calls_per_job"], p["resync"]["cpu_s"]]
                for p in resyncs
            ],
        )  # fmt: skip
    for p in points:
        if "churn" in p:
            c = p["churn"]
            lines += [f"### Steady churn at N = {p['n']}", ""]
            lines += _table(
                ["rate/s", "updates", "measured", "superseded", "p50 ms", "p95 ms", "p99 ms",
                 "max ms"],
                [[c["rate_per_s"], c["updates"], c["measured"], c["superseded"], c["p50_ms"],
                  c["p95_ms"], c["p99_ms"], c["max_ms"]]],
            )  # fmt: skip
        if "noop_event" in p:
            e = p["noop_event"]
            lines += [f"### No-op events at N = {p['n']} (CI submits pre-rendered specs)", ""]
            lines += _table(
                ["events", "controller calls / event", "controller job writes", "calls"],
                [[e["events"], e["calls_per_event"], e["controller_job_writes"],
                  json.dumps(e["controller_calls"])]],
            )  # fmt: skip
    return lines


def _dp_tables(dp: dict[str, Any]) -> list[str]:
    lines = ["### Throughput and latency per path (median of rounds; [min, max])", ""]
    rows = []
    for name, loads in dp["results"].items():
        for load, s in sorted(loads.items()):
            rows.append(
                [name, load, f"{s['rps']:.0f} [{s['rps_spread'][0]:.0f}, {s['rps_spread'][1]:.0f}]",
                 f"{s['p50_us']:.0f} [{s['p50_spread'][0]}, {s['p50_spread'][1]}]",
                 f"{s['p99_us']:.0f} [{s['p99_spread'][0]}, {s['p99_spread'][1]}]", s["errors"]]
            )  # fmt: skip
    lines += _table(["path", "load", "req/s", "p50 us", "p99 us", "errors"], rows)
    lines += ["### Ratios", ""]
    lines += _table(
        ["load", "ours / direct (req/s)", "best peer", "ours / best peer", "added p50 us"],
        [
            [load, r["ours_vs_direct"], r["best_peer"], r["ours_vs_best_peer"], r["added_p50_us"]]
            for load, r in sorted(dp["per_load"].items())
        ],
    )
    if "tuning" in dp:
        lines += ["### Tuning the sidecar's defaults (same harness, variants interleaved)", ""]
        rows = []
        for name, t in dp["tuning"].items():
            for load, s in sorted(t["results"].items()):
                rows.append([name, t["change"], load, f"{s['rps']:.0f}",
                             f"{s['p50_us']:.0f}", f"{s['p99_us']:.0f}"])  # fmt: skip
        lines += _table(["variant", "change", "load", "req/s", "p50 us", "p99 us"], rows)
    return lines


def markdown(result: dict[str, Any], plots: dict[str, str], notes: str, findings: str = "") -> str:
    env = result["environment"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{result['command']}` on {result['date']} "
        f"(results: `{result['results_file']}`). Benchmarks are never test assertions.",
        "",
        "## Machine and versions",
        "",
        *(f"- {k}: {v}" for k, v in env.items()),
        "",
        "## Commands",
        "",
        "- `make bench` (`python -m bench --full`): N = 100, 1,000, 10,000; every phase; tuning;",
        "  writes `bench/results/<date>.json`, the PNGs and this file.",
        "- `make bench-quick` (`python -m bench --quick`): N = 1,000 cold start against its",
        "  ceiling and the data-plane ratios (1 s wrk runs); prints the summary line only.",
        "",
        "## Against the targets (DESIGN §10)",
        "",
    ]
    lines += _table(["target", "measured", "met?", "why"], against_targets(result))
    lines += ["## Control plane", ""]
    lines += _cp_tables(result["control_plane"])
    lines += [f"![{name}]({path})" for name, path in plots.items() if name.startswith("cp")]
    lines += ["", "## Data plane", ""]
    lines += _dp_tables(result["data_plane"])
    lines += [f"![{name}]({path})" for name, path in plots.items() if name.startswith("dp")]
    if "data_plane_egress" in result:
        lines += ["", *egress_lines(result["data_plane_egress"])]
    if findings:
        lines += ["", "## Findings", "", findings.strip()]
    lines += ["", "## Method and caveats", "", notes.strip(), ""]
    return "\n".join(lines)
