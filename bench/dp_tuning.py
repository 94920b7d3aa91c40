"""``python -m bench.dp_tuning``: the sidecar against its peers and its tuning candidates at c32.

The study behind the data-plane findings in BENCHMARKS.md (issue 16, item 6): our rendered
sidecar, stunnel, haproxy and each candidate setting (``data_plane.VARIANTS``, text edits of
the rendered conf) at 32 keep-alive connections, interleaved (every server once per round, the
order rotating) for several rounds. On a shared two-core machine req/s swings by 2x from one
run to the next, so besides medians with their spread it prints what survives that noise: the
per-round ratio of each server to the template as rendered (the two ran seconds apart) with how
many rounds it won, and the CPU each server spent per request.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import data_plane as dp
from bench import dp_servers as srv
from bench.wrk import script

BASE = "as-rendered"


def _med(values: list[float], spec: str) -> str:
    return f"{format(statistics.median(values), spec)} [{format(min(values), spec)}, " + (
        f"{format(max(values), spec)}]"
    )


def table(raw: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: median [min, max] per server, and per-round ratios to the template."""
    lines = [
        "| server | req/s | CPU us/req | req/s vs as-rendered, same round | rounds won "
        "| CPU/req vs as-rendered | rounds cheaper |",
        "|---|---|---|---|---|---|---|",
    ]
    base = raw[BASE]
    for name, runs in raw.items():
        rps = [r["rps"] for r in runs]
        cpu = [r["cpu_us_per_req"] for r in runs]
        if name == BASE:
            lines.append(f"| {name} | {_med(rps, '.0f')} | {_med(cpu, '.1f')} | - | - | - | - |")
            continue
        ratio = [r["rps"] / b["rps"] for r, b in zip(runs, base, strict=True)]
        cost = [r["cpu_us_per_req"] / b["cpu_us_per_req"] for r, b in zip(runs, base, strict=True)]
        lines.append(
            f"| {name} | {_med(rps, '.0f')} | {_med(cpu, '.1f')} | {_med(ratio, '.2f')} "
            f"| {sum(x > 1 for x in ratio)}/{len(ratio)} | {_med(cost, '.2f')} "
            f"| {sum(x < 1 for x in cost)}/{len(cost)} |"
        )
    return lines


async def study(
    variants: list[str], peers: bool, rounds: int, seconds: int, pin: bool = False
) -> list[str]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-dpt-"))
    started: list[srv.Server] = []
    try:
        app = srv.backend(workdir)
        started.append(app)
        ours = await dp.render_ours(workdir, app.port)
        pem = ours.task_root / "secrets" / "mesh-tls.pem"
        servers: dict[str, srv.Server] = {}
        for name in [BASE, *variants]:
            servers[name] = dp.start_variant(ours, name, dp.VARIANTS[name][1])
            started.append(servers[name])
        if peers:
            servers["stunnel"] = srv.stunnel(workdir, pem, app.port)
            servers["haproxy"] = srv.haproxy(workdir, pem, app.port)
            started += [servers["stunnel"], servers["haproxy"]]
        if pin:
            # One core for the server under test, the other for wrk and the app: every server,
            # threaded or not, then has exactly the one core a single-worker sidecar can use.
            app.pin([0])
            for server in servers.values():
                server.pin([1])
        lua = script(workdir)
        raw: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        names = list(servers)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                raw[name].append(
                    dp.measured(servers[name], dp.KEEPALIVE_32, seconds, lua, "0" if pin else "")
                )
            print(f"[dp_tuning] round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        return table(raw)
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dp_tuning")
    parser.add_argument("variants", nargs="*", help=f"from {', '.join(dp.VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="only the nginx variants")
    parser.add_argument(
        "--pin", action="store_true", help="servers on CPU 1, wrk and the app on CPU 0"
    )
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in dp.VARIANTS or v == BASE]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(dp.VARIANTS)}")
    lines = asyncio.run(
        study(args.variants, not args.no_peers, args.rounds, args.seconds, args.pin)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
