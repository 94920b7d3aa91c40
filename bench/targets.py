"""DESIGN §10's targets, each judged from a result: the figure, met or not, and the evidence.

The "why" column is built from measured figures only (CPU shares, call counts, writes), so a
rerun that changes the numbers changes the explanation with them.
"""

from __future__ import annotations

import json
from typing import Any


def _point(cp: dict[str, Any], n: int) -> dict[str, Any] | None:
    return next((p for p in cp.get("points", []) if p["n"] == n), None)


def _largest(cp: dict[str, Any]) -> dict[str, Any] | None:
    points = cp.get("points", [])
    return max(points, key=lambda p: p["n"]) if points else None


def _yes(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _where(p: dict[str, Any], n: int) -> str:
    return "" if p["n"] == n else f" (largest N run: {p['n']:,})"


def cold_start_row(cp: dict[str, Any]) -> list[str]:
    p = _point(cp, 10_000) or _largest(cp)
    if p is None:
        return ["cold start >= 0.8x ceiling at 10k", "not measured", "-", ""]
    ratio = p["cold_start"]["ratio_to_ceiling"]
    c = p["ceiling"]
    why = (
        f"ceiling {c['jobs_per_s']} jobs/s ({c.get('calls_per_job')} calls per job: GET, "
        f"register with EnforceIndex, status Variable PUT with CAS) with the twin at "
        f"{c['twin_cpu_share']:.0%} of a core; the controller made "
        f"{p['per_new_job']['calls_total']} calls and spent {p['per_new_job']['cpu_ms']} ms "
        "of CPU per new job, sharing the two cores with the twin"
    )
    restarts = p["leadership"]["restarts"]
    if restarts:
        why += (
            f"; the controller exited {len(restarts)}x (exit {restarts}) and was restarted as "
            "its supervisor would, which the time includes"
        )
    return [
        f"cold start of N={p['n']:,} >= 0.8x the bare client",
        f"{ratio:.2f}x ({p['cold_start']['jobs_per_s']} vs {c['jobs_per_s']} jobs/s)",
        _yes(ratio >= 0.8) + _where(p, 10_000),
        why,
    ]


def per_job_rows(cp: dict[str, Any]) -> list[list[str]]:
    p = _point(cp, 10_000) or _largest(cp)
    if p is None:
        return [["<= 3.2 calls and <= 4 ms CPU per new job", "not measured", "-", ""]]
    cost = p["per_new_job"]
    kinds = sorted(cost["calls"].items(), key=lambda kv: -kv[1])[:4]
    return [
        [
            f"<= 3.2 API calls per newly meshed job at N={p['n']:,}",
            f"{cost['calls_total']}",
            _yes(cost["calls_total"] <= 3.2) + _where(p, 10_000),
            "counted at the twin from spawn until quiet (the leader lock's calls left out), "
            "divided by N; most: " + ", ".join(f"{k} {v}" for k, v in kinds),
        ],
        [
            f"<= 4 ms controller CPU per newly meshed job at N={p['n']:,}",
            f"{cost['cpu_ms']} ms",
            _yes(cost["cpu_ms"] <= 4.0) + _where(p, 10_000),
            "user + system time of the `controller run` process (/proc/<pid>/stat) from its "
            f"first /status answer until quiet, divided by N (startup, {cost['startup_cpu_s']} "
            f"s, left out; with it {cost['cpu_ms_with_startup']} ms)",
        ],
    ]


def churn_row(cp: dict[str, Any]) -> list[str]:
    p = _point(cp, 1000)
    runs = (p or {}).get("churn", [])
    at20 = next((c for c in runs if c["rate_per_s"] == 20.0), None)
    if p is None or at20 is None:
        return ["p99 event->register < 100 ms at 1k, 20/s", "not measured (quick run)", "-", ""]
    others = "; ".join(
        f"at {c['rate_per_s']:g}/s p50 {c['p50_ms']}, p95 {c['p95_ms']}, p99 {c['p99_ms']} ms"
        for c in runs
        if c is not at20
    )
    why = f"p50 {at20['p50_ms']} ms, p95 {at20['p95_ms']} ms over {at20['measured']} updates"
    return [
        "p99 event->register under churn < 100 ms at N=1,000 and 20 updates/s",
        f"p99 {at20['p99_ms']} ms",
        _yes(at20["p99_ms"] < 100),
        why + (f"; {others}" if others else ""),
    ]


def resync_row(cp: dict[str, Any]) -> list[str]:
    points = [p for p in cp.get("points", []) if "resync" in p]
    if not points:
        return ["resync of converged jobs makes 0 writes", "not measured (quick run)", "-", ""]
    writes = {p["n"]: sum(p["resync"]["writes"].values()) for p in points}
    return [
        "a resync of converged jobs makes 0 writes of any kind",
        ", ".join(f"N={n:,}: {w}" for n, w in writes.items()),
        _yes(all(w == 0 for w in writes.values())),
        "every non-GET call the twin served during the resync (job registers, Variable PUTs): "
        + json.dumps({p["n"]: p["resync"]["writes"] for p in points}),
    ]


def lock_row(cp: dict[str, Any]) -> list[str]:
    p = _point(cp, 10_000) or _largest(cp)
    if p is None:
        return ["no leader lock lost at 10k", "not measured", "-", ""]
    lead = p["leadership"]
    return [
        f"no leader lock lost at N={p['n']:,}",
        f"{lead['lock_losses']} lost",
        _yes(lead["lock_losses"] == 0) + _where(p, 10_000),
        f"'leadership lost' in the controller's log through every phase; the twin granted the "
        f"lock {lead['lock_terms']}x (1 = one term); exits {lead['restarts']}; "
        f"{lead.get('renewals', 0):.0f} renewals of the last process, all under "
        f"{lead.get('all_renewals_under_s')} s (leader_renew_duration_seconds)",
    ]


def rss_row(cp: dict[str, Any]) -> list[str]:
    p = _point(cp, 10_000) or _largest(cp)
    if p is None:
        return ["RSS < 120 MB at 10k", "not measured", "-", ""]
    rss = p["peak_rss_mb"]
    return [
        f"controller RSS < 120 MB at N={p['n']:,}",
        f"{rss:.0f} MB peak",
        _yes(rss < 120) + _where(p, 10_000),
        "VmHWM (/proc/<pid>/status) of the `controller run` process: the kernel's high-water "
        "mark over every phase",
    ]


def throughput_row(dp: dict[str, Any]) -> list[str]:
    ratio = dp.get("ratio_vs_best_peer")
    if ratio is None:
        return ["sidecar >= best peer on throughput", "not measured", "-", ""]
    load = dp["per_load"].get("c32-keepalive", {})
    cpu = dp.get("cpu_vs_best_peer")
    return [
        "sidecar throughput >= best of haproxy/stunnel/caddy",
        f"{ratio:.2f}x {dp.get('best_peer')} (c32 keep-alive)",
        _yes(ratio >= 1.0),
        f"ours/direct {load.get('ours_vs_direct')}; every peer ran with one worker/thread "
        "except stunnel (a thread per connection) and the same certificate and TLS settings"
        + ("" if cpu is None else f"; CPU per request ours/{dp.get('best_peer')} {cpu:.2f}"),
    ]


def latency_row(dp: dict[str, Any]) -> list[str]:
    added = dp.get("added_p50_us")
    if added is None:
        return ["adds < 100 us p50 at c1", "not measured", "-", ""]
    r = dp["results"]
    return [
        "sidecar adds < 100 us p50 at concurrency 1 over plaintext",
        f"+{added:.0f} us ({r['ours']['c1-keepalive']['p50_us']:.0f} vs "
        f"{r['direct']['c1-keepalive']['p50_us']:.0f} us)",
        _yes(added < 100),
        "keep-alive connection, wrk's p50 of the median round",
    ]


def against_targets(result: dict[str, Any]) -> list[list[str]]:
    cp = result.get("control_plane", {})
    dp = result.get("data_plane", {})
    return [
        cold_start_row(cp),
        *per_job_rows(cp),
        churn_row(cp),
        resync_row(cp),
        lock_row(cp),
        rss_row(cp),
        throughput_row(dp),
        latency_row(dp),
    ]
