"""matplotlib PNGs for BENCHMARKS.md: the control plane's scale curve and latency CDFs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scale_curve(cp: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    points = sorted(cp["points"], key=lambda p: p["n"])
    ns = [p["n"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(ns, [p["cold_start"]["seconds"] for p in points], "o-", label="controller cold start")
    left.plot(ns, [p["ceiling"]["seconds"] for p in points], "s--", label="bare client (ceiling)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("meshed jobs (N)")
    left.set_ylabel("seconds until every job is injected")
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    right.plot(ns, [p["cold_start"]["peak_rss_mb"] for p in points], "o-", label="controller RSS")
    right.axhline(120, color="red", linestyle=":", label="target 120 MB")
    right.set_xscale("log")
    right.set_xlabel("meshed jobs (N)")
    right.set_ylabel("peak RSS during cold start (MB)")
    right.legend()
    right.grid(True, which="both", alpha=0.3)
    fig.suptitle("Control plane: convergence time and memory against N")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def latency_cdfs(dp: dict[str, Any], load: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, loads in dp["results"].items():
        summary = loads.get(load)
        if not summary:
            continue
        pct = sorted((float(k), v) for k, v in summary["percentiles_us"].items())
        ax.plot([v for _, v in pct], [p / 100 for p, _ in pct], label=name)
    ax.set_xscale("log")
    ax.set_xlabel("latency (us, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"Data plane latency CDF, wrk {load}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def churn_curves(cp: dict[str, Any]) -> dict[str, list[float]]:
    """Every churn run of a result, labelled ``N=1000 at 20/s``, that has samples."""
    return {
        f"N={p['n']} at {c['rate_per_s']:g}/s": c["samples_ms"]
        for p in sorted(cp["points"], key=lambda p: p["n"])
        for c in p.get("churn", [])
        if c.get("samples_ms")
    }


def churn_cdf(curves: dict[str, list[float]], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, samples in curves.items():
        ordered = sorted(samples)
        ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)
    ax.axvline(100, color="red", linestyle=":", label="target p99 100 ms")
    ax.set_xscale("log")
    ax.set_xlabel("user register -> controller register (ms, log scale)")
    ax.set_ylabel("fraction of updates")
    ax.set_title("Control plane: event -> register latency under churn")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
