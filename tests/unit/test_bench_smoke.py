"""The benchmark's pure parts: its modules import, and its arithmetic and report are right.

Benchmarks themselves are never run here (and no speed is ever asserted); this only guards the
summary line `make bench-quick` must end with and the figures BENCHMARKS.md is built from.
"""

from __future__ import annotations

import asyncio
import importlib

import pytest

from bench import control_plane, data_plane, report, targets, twin
from bench.jobs import bump, job_ids, user_job
from controller.config.mesh import load_mesh_config
from reconcilers.injection.plan import Apply, plan_job

pytestmark = pytest.mark.timeout(10)


def _summary(rps: float, p50: int, p99: int) -> dict[str, object]:
    return {"rps": rps, "p50_us": p50, "p99_us": p99, "percentiles_us": {"50.0": p50}}


SAMPLE = {
    "control_plane": {
        "ratio": 0.6349,
        "calls_per_job": 3.104,
        "cpu_ms_per_job": 3.8,
        "points": [
            {
                "n": 1000,
                "ceiling": {
                    "jobs_per_s": 200.0,
                    "twin_cpu_share": 0.97,
                    "seconds": 5.0,
                    "calls_per_job": 3.0,
                },
                "cold_start": {
                    "ratio_to_ceiling": 0.6349,
                    "jobs_per_s": 127.0,
                    "peak_rss_mb": 91.0,
                    "seconds": 7.9,
                },
                "per_new_job": {
                    "calls": {"GET job": 1.1, "POST job": 1.0, "PUT var": 1.004},
                    "calls_total": 3.104,
                    "cpu_ms": 3.8,
                    "startup_cpu_s": 0.7,
                    "cpu_ms_with_startup": 4.5,
                },
                "peak_rss_mb": 93.0,
                "leadership": {"lock_losses": 0, "lock_terms": 1, "restarts": []},
            }
        ],
    },
    "data_plane": {
        "results": {
            "direct": {"c1-keepalive": _summary(20000, 40, 90)},
            "ours": {"c1-keepalive": _summary(9000, 71, 150)},
        },
        "per_load": {"c32-keepalive": {"ours_vs_direct": 0.3}},
        "ratio_vs_best_peer": 0.914,
        "best_peer": "haproxy",
        "added_p50_us": 31.4,
    },
}


def test_every_bench_module_imports() -> None:
    for name in ("bench.__main__", "bench.cp_phases", "bench.dp_servers", "bench.plots"):
        assert importlib.import_module(name).__doc__


def test_final_line_is_exactly_the_contract() -> None:
    assert report.final_line(SAMPLE) == (
        "control-plane ratio=0.63 calls_per_job=3.10 cpu_ms_per_job=3.80 "
        "data-plane ratio_vs_best_peer=0.91 added_p50_us=31"
    )


def test_final_line_says_n_a_for_what_was_not_measured() -> None:
    assert report.final_line({}) == (
        "control-plane ratio=n/a calls_per_job=n/a cpu_ms_per_job=n/a "
        "data-plane ratio_vs_best_peer=n/a added_p50_us=n/a"
    )


def test_targets_judge_the_sample() -> None:
    rows = {row[0]: row for row in targets.against_targets(SAMPLE)}
    cold = next(r for k, r in rows.items() if k.startswith("cold start"))
    assert (
        cold[1].startswith("0.63x") and "not met" in cold[2] and "largest N run: 1,000" in cold[2]
    )
    latency = next(r for k, r in rows.items() if "adds < 100 us" in k)
    assert latency[1].startswith("+31 us") and latency[2] == "met"
    peer = next(r for k, r in rows.items() if "best of haproxy" in k)
    assert "0.91x haproxy" in peer[1] and "not met" in peer[2]


def test_ratios_pick_the_best_peer_and_the_added_latency() -> None:
    results = {
        "direct": {"c32-keepalive": _summary(40000, 300, 900), "c1-keepalive": _summary(1, 20, 1)},
        "ours": {"c32-keepalive": _summary(12000, 900, 2000), "c1-keepalive": _summary(1, 55, 1)},
        "haproxy": {"c32-keepalive": _summary(15000, 800, 1800)},
        "stunnel": {"c32-keepalive": _summary(10000, 1000, 2500)},
    }
    out = data_plane.ratios(results)
    assert out["best_peer"] == "haproxy"
    assert out["ratio_vs_best_peer"] == 0.8
    assert out["ours_vs_direct"] == 0.3
    assert out["added_p50_us"] == 35


def test_summaries_are_medians_with_their_spread() -> None:
    runs = [
        {"rps": r, "p50_us": p, "p99_us": 10 * p, "errors": 0, "percentiles_us": {"50.0": p}}
        for r, p in ((100.0, 30), (300.0, 10), (200.0, 20))
    ]
    s = data_plane.summarize(runs)
    assert (s["rps"], s["rps_spread"], s["p50_us"], s["p99_us"]) == (200.0, [100.0, 300.0], 20, 200)
    assert s["percentiles_us"] == {"50.0": 20}, "the percentiles of the median-rps run"


def test_percentile_interpolates() -> None:
    assert control_plane.percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert control_plane.percentile([5.0], 0.99) == 5.0


def test_route_kinds_drop_ids() -> None:
    assert twin.route_kind("/v1/job/web/allocations") == "job/allocations"
    assert twin.route_kind("/v1/job/web") == "job"
    assert twin.route_kind("/v1/var/mesh-controller/status/default/web") == "var"
    assert twin.route_kind("/v1/jobs") == "jobs"
    assert twin.route_kind("/v1/event/stream") == "event/stream"


def test_generated_jobs_are_meshed_and_injectable() -> None:
    config = load_mesh_config({})
    ids = job_ids(20)
    assert ids[0] == "svc-00000" and len(set(ids)) == 20
    for job_id in ids:
        job = user_job(job_id, seed=3)
        assert job == user_job(job_id, seed=3), "deterministic per seed"
        assert 1 <= len(job["TaskGroups"]) <= 3
        assert isinstance(plan_job(job, config), Apply)
        assert bump(job, 7)["Meta"]["revision"] == "7"


def test_a_failed_data_plane_phase_is_recorded_not_raised() -> None:
    from bench.__main__ import survived

    async def breaks() -> dict[str, object]:
        raise PermissionError("403 from the per-job role")

    outcome = asyncio.run(survived("egress row", breaks()))
    assert outcome == {"error": "PermissionError: 403 from the per-job role"}
    lines = report._dp_tables(outcome)
    assert (
        lines[0]
        == "Not measured: the data plane failed (PermissionError: 403 from the per-job role)."
    )
