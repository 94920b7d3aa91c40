"""BENCHMARKS.md's control-plane tables, built from a result's ``control_plane`` section.

The first table is the one the targets are read from (per N: the ratio to the ceiling, calls
and controller CPU per new job, churn percentiles at each rate, peak RSS, leases lost); the
others hold the evidence behind it (CPU shares, calls by kind, resync, churn, no-op events).
"""

from __future__ import annotations

import json
from typing import Any


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _churn_at(p: dict[str, Any], rate: float) -> str:
    c = next((c for c in p.get("churn", []) if c["rate_per_s"] == rate), None)
    return "-" if c is None else f"{c['p50_ms']} / {c['p95_ms']} / {c['p99_ms']}"


def _rates(points: list[dict[str, Any]]) -> list[float]:
    return sorted({c["rate_per_s"] for p in points for c in p.get("churn", [])})


def summary_table(points: list[dict[str, Any]]) -> list[str]:
    rates = _rates(points)
    lines = ["### Per N: against the ceiling, per new job, under churn", ""]
    header = ["N", "ceiling jobs/s", "cold start jobs/s", "ratio", "calls / new job",
              "CPU ms / new job", *(f"churn {r:g}/s p50 / p95 / p99 ms" for r in rates),
              "peak RSS MB", "lock losses"]  # fmt: skip
    rows = [
        [p["n"], p["ceiling"]["jobs_per_s"], p["cold_start"]["jobs_per_s"],
         p["cold_start"]["ratio_to_ceiling"], p["per_new_job"]["calls_total"],
         p["per_new_job"]["cpu_ms"], *(_churn_at(p, r) for r in rates),
         p["peak_rss_mb"], p["leadership"]["lock_losses"]]
        for p in points
    ]  # fmt: skip
    lines += table(header, rows)
    lines += [
        "Calls and CPU per new job: from the controller's spawn until it is quiet (every job",
        "injected, its status written, its rollout checked), divided by N; the leader lock's",
        "calls are left out, and so is the CPU spent before the process first answered /status",
        "(imports and wiring). Lock losses: the controller's log; the twin granted the lock "
        + ", ".join(f"{p['leadership']['lock_terms']}x at N={p['n']}" for p in points)
        + " (1 = one term, never lost).",
        "",
    ]
    return lines


def cold_start_table(points: list[dict[str, Any]]) -> list[str]:
    lines = ["### Cold start in detail", ""]
    lines += table(
        ["N", "ceiling calls / job", "ceiling s", "cold start s", "startup s",
         "jobs/s after 1st write", "quiet after s", "restarts"],
        [
            [p["n"], p["ceiling"].get("calls_per_job"), p["ceiling"]["seconds"],
             p["cold_start"]["seconds"], p["cold_start"]["startup_s"],
             p["cold_start"]["jobs_per_s_after_first_write"], p["per_new_job"]["quiet_s"],
             json.dumps(p["leadership"]["restarts"])]
            for p in points
        ],
    )  # fmt: skip
    lines += ["CPU share (fraction of one core) while measuring:", ""]
    lines += table(
        ["N", "ceiling: twin", "ceiling: driver", "cold start: twin", "cold start: controller"],
        [
            [p["n"], p["ceiling"]["twin_cpu_share"], p["ceiling"]["driver_cpu_share"],
             p["cold_start"]["twin_cpu_share"], p["cold_start"]["controller_cpu_share"]]
            for p in points
        ],
    )  # fmt: skip
    kinds = sorted({k for p in points for k in p["per_new_job"]["calls"]})
    lines += ["### API calls per newly meshed job, by kind (spawn until quiet)", ""]
    lines += table(
        ["N", *kinds, "total"],
        [
            [p["n"], *(p["per_new_job"]["calls"].get(k, 0) for k in kinds),
             p["per_new_job"]["calls_total"]]
            for p in points
        ],
    )  # fmt: skip
    return lines


def later_phase_tables(points: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    resyncs = [p for p in points if "resync" in p]
    if resyncs:
        lines += ["### Resync of N converged jobs", ""]
        lines += table(
            ["N", "duration s", "job writes", "other writes", "calls / job", "controller CPU s"],
            [
                [p["n"], p["resync"]["seconds"], p["resync"]["job_writes"],
                 json.dumps({k: v for k, v in p["resync"]["writes"].items() if k != "POST job"}),
                 p["resync"]["calls_per_job"], p["resync"]["cpu_s"]]
                for p in resyncs
            ],
        )  # fmt: skip
    churns = [(p["n"], c) for p in points for c in p.get("churn", [])]
    if churns:
        lines += ["### Steady churn (users redeploy; event -> register)", ""]
        lines += table(
            ["N", "rate/s", "updates", "measured", "superseded", "p50 ms", "p95 ms", "p99 ms",
             "max ms", "drained"],
            [[n, c["rate_per_s"], c["updates"], c["measured"], c["superseded"], c["p50_ms"],
              c["p95_ms"], c["p99_ms"], c["max_ms"], "yes" if c.get("drained", True) else
              "**no** (unanswered updates missing)"] for n, c in churns],
        )  # fmt: skip
    for p in points:
        if "noop_event" in p:
            e = p["noop_event"]
            lines += [f"### No-op events at N = {p['n']} (CI submits pre-rendered specs)", ""]
            lines += table(
                ["events", "controller calls / event", "controller job writes", "calls"],
                [[e["events"], e["calls_per_event"], e["controller_job_writes"],
                  json.dumps(e["controller_calls"])]],
            )  # fmt: skip
    return lines


def cp_tables(cp: dict[str, Any]) -> list[str]:
    points = sorted(cp["points"], key=lambda p: p["n"])
    return [*summary_table(points), *cold_start_table(points), *later_phase_tables(points)]
