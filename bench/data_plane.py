"""Data-plane benchmark: what our rendered sidecar costs over plaintext, and against its peers.

A real OpenBao issues the certificate exactly as the sidecar's templates ask for it (the
devstack renderer plays the Nomad client, as in the data-plane e2e test), then OpenBao is
stopped so it takes no CPU. Backend: nginx ``return 200``. Paths: direct plaintext, our sidecar
(its own rendered nginx.conf, argv and env), haproxy, stunnel, and caddy when its wheel is
installed — all with the same certificate file. wrk drives each path at every load; runs are
interleaved (every path once per load per round, the order rotating each round) and repeated,
and each figure is the median with its min-max spread.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import dp_servers as srv
from bench.wrk import Load, run, script
from controller.config.mesh import load_mesh_config
from crds_equivalent import keys
from crds_equivalent.spec import parse_job_specs
from devstack.sidecar_render import RenderedSidecar, render_sidecar
from devstack.template import VaultTarget
from devstack.vault import start_openbao
from devstack.workload_login import workload_token
from reconcilers.injection.inject import inject

KEEPALIVE_1 = Load(1, close=False)
KEEPALIVE_32 = Load(32, close=False)
CLOSE_1 = Load(1, close=True)
CLOSE_32 = Load(32, close=True)
PEERS = ("haproxy", "stunnel", "caddy")


@dataclass(frozen=True)
class Plan:
    seconds: int
    rounds: int
    loads: tuple[Load, ...]
    c1_paths: tuple[str, ...] | None  # None: every path at c1 too
    tuning: bool
    caddy: str | None  # the caddy executable, if installed


def user_job() -> dict[str, Any]:
    """The e2e's meshed job: one group, host networking, one http port with a check."""
    return {
        "ID": "web",
        "Name": "web",
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "frontend",
                "Count": 1,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": "web", "PortLabel": "http"}],
                "Tasks": [
                    {
                        "Name": "app",
                        "Driver": "raw_exec",
                        "Config": {"command": "/srv/web/bin/app"},
                        "Resources": {"CPU": 200, "MemoryMB": 128},
                    }
                ],
            }
        ],
    }


async def render_ours(workdir: Path, app_port: int) -> RenderedSidecar:
    """Issue through real OpenBao and render the sidecar; OpenBao is stopped afterwards."""
    bao = await start_openbao(data_dir=str(workdir / "openbao"))
    try:
        # The sidecar's own token: a JWT login of job web's identity, after the grant of its
        # names that the controller makes (identity-bound leaves).
        token = await workload_token(bao, "web", ("web.service.consul", "web.service.*.consul"))
        config = load_mesh_config({"MESH_SIDECAR_DRIVER": "raw_exec", "MESH_NGINX_BIN": srv.NGINX})
        job = inject(user_job(), parse_job_specs(user_job()), config)
        return await render_sidecar(
            job, VaultTarget(bao.addr, token), workdir / "alloc", fixed_ports={"http": app_port}
        )
    finally:
        await bao.stop()


# --- tuning variants: text transforms of the rendered nginx.conf -------------------------------

Variant = Callable[[str], str]


def _in_http(directive: str) -> Variant:
    """Add a directive at http{} level (beside ``access_log off``)."""
    return lambda c: c.replace("  access_log off;", f"  access_log off;\n  {directive}", 1)


def _in_upstream(directive: str) -> Variant:
    return lambda c: c.replace("    keepalive 64;", f"    keepalive 64;\n    {directive}")


def _in_main(directive: str) -> Variant:
    return lambda c: c.replace("worker_processes 1;", f"worker_processes 1;\n{directive}")


def _workers_2(extra: Variant = lambda c: c) -> Variant:
    return lambda c: extra(c.replace("worker_processes 1;", "worker_processes 2;"))


# Every candidate of issue 16 item 6 that applies to one worker, and the multi-worker ones.
VARIANTS: dict[str, tuple[str, Variant]] = {
    "as-rendered": ("the template as it is", lambda c: c),
    "workers-2": ("worker_processes 2", _workers_2()),
    "workers-2-reuseport": (
        "worker_processes 2, listen ... reuseport",
        _workers_2(lambda c: c.replace(" ssl;", " ssl reuseport;")),
    ),
    "workers-2-accept-mutex": (
        "worker_processes 2, accept_mutex on",
        _workers_2(
            lambda c: c.replace(
                "worker_connections 4096;", "worker_connections 4096; accept_mutex on;"
            )
        ),
    ),
    "cpu-affinity": ("worker_cpu_affinity auto", _in_main("worker_cpu_affinity auto;")),
    "tickets-on": (
        "ssl_session_tickets on",
        lambda c: c.replace("ssl_session_tickets off;", "ssl_session_tickets on;"),
    ),
    "no-upstream-keepalive": (
        "no keepalive pool to the app",
        lambda c: "\n".join(x for x in c.splitlines() if "keepalive 64;" not in x) + "\n",
    ),
    "ssl-buffer-4k": ("ssl_buffer_size 4k", _in_http("ssl_buffer_size 4k;")),
    "keepalive-requests-1m": (
        "keepalive_requests 1000000 (clients)",
        _in_http("keepalive_requests 1000000;"),
    ),
    "upstream-keepalive-requests-1m": (
        "keepalive_requests 1000000 (pool to the app)",
        _in_upstream("keepalive_requests 1000000;"),
    ),
    "tcp-nodelay-off": ("tcp_nodelay off", _in_http("tcp_nodelay off;")),
    "proxy-buffering-off": ("proxy_buffering off", _in_http("proxy_buffering off;")),
    "tls12-only": (
        "ssl_protocols TLSv1.2",
        lambda c: c.replace("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.2;"),
    ),
}


def start_variant(ours: RenderedSidecar, name: str, transform: Variant) -> srv.Server:
    """Our nginx with a transformed copy of the rendered conf, on its own port and pid file."""
    tls_port = ours.ports[keys.tls_port_label("http")]
    port = srv.free_port()
    text = ours.conf_path.read_text()
    text = text.replace(f"{srv.HOST}:{tls_port} ssl", f"{srv.HOST}:{port} ssl")
    text = text.replace("nginx.pid;", f"nginx-{name}.pid;")
    text = text.replace("shared:mesh_tls_http:", f"shared:mesh_tls_{name.replace('-', '_')}:")
    changed = transform(text)
    if changed == text and name != "as-rendered":
        # The rendered conf no longer has the text this variant edits: measuring it would
        # silently measure the template as it is under another name.
        raise ValueError(f"tuning variant {name!r} changes nothing in the rendered nginx.conf")
    conf = ours.conf_path.with_name(f"nginx-{name}.conf")
    conf.write_text(changed)
    argv = [str(conf) if a == str(ours.conf_path) else a for a in ours.argv]
    return srv.sidecar(f"ours-{name}", argv, ours.env, ours.task_root, port)


# --- measuring -----------------------------------------------------------------------------------


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median and min-max spread over repeated runs; the median-rps run's percentiles."""
    rps = [r["rps"] for r in runs]
    p50 = [r["p50_us"] for r in runs]
    p99 = [r["p99_us"] for r in runs]
    middle = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    return {
        "rps": statistics.median(rps),
        "rps_spread": [min(rps), max(rps)],
        "p50_us": statistics.median(p50),
        "p50_spread": [min(p50), max(p50)],
        "p99_us": statistics.median(p99),
        "p99_spread": [min(p99), max(p99)],
        "errors": sum(r["errors"] for r in runs),
        **_cpu(runs),
        "runs": len(runs),
        "percentiles_us": middle["percentiles_us"],
    }


def measured(
    server: srv.Server, load: Load, seconds: int, lua: Path, wrk_cpus: str = ""
) -> dict[str, Any]:
    """One wrk run, plus the CPU the server under test spent per request during it."""
    before = server.cpu_seconds()
    out: dict[str, Any] = run(server.url, load, seconds, lua, cpus=wrk_cpus)
    spent = server.cpu_seconds() - before
    out["cpu_us_per_req"] = round(spent / max(1, int(out["requests"])) * 1e6, 1)
    return out


def _cpu(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    cpu = [r["cpu_us_per_req"] for r in runs if "cpu_us_per_req" in r]
    if not cpu:
        return {}
    return {"cpu_us_per_req": statistics.median(cpu), "cpu_spread": [min(cpu), max(cpu)]}


def interleaved(
    servers: dict[str, srv.Server],
    loads: Sequence[Load],
    plan: Plan,
    lua: Path,
    c1_paths: Sequence[str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, dict[str, Any]]:
    """Every (path, load) ``plan.rounds`` times, interleaved; {path: {load: summary}}."""
    raw: dict[tuple[str, str], list[dict[str, Any]]] = {}
    names = list(servers)
    for r in range(plan.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for load in loads:
            for name in order:
                if load.connections == 1 and c1_paths is not None and name not in c1_paths:
                    continue
                raw.setdefault((name, load.name), []).append(
                    measured(servers[name], load, plan.seconds, lua)
                )
        say(f"data plane: round {r + 1}/{plan.rounds} done")
    out: dict[str, dict[str, Any]] = {}
    for (name, load_name), runs in raw.items():
        out.setdefault(name, {})[load_name] = summarize(runs)
    return out


def _cpu_ratio(ours: dict[str, Any], peer: dict[str, Any] | None) -> float | None:
    """Server CPU per request, ours over the peer's: below 1, ours does the same work cheaper."""
    if peer is None or not peer.get("cpu_us_per_req") or "cpu_us_per_req" not in ours:
        return None
    return round(float(ours["cpu_us_per_req"]) / float(peer["cpu_us_per_req"]), 3)


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ours against direct and against the best peer, per load; added p50 at c1 keep-alive.

    The best peer is the one with the most req/s; ``ours_cpu_vs_best_peer`` compares what a
    request cost each server in CPU, which is what the req/s ratio hides on a shared machine
    (a multi-threaded peer takes CPU on both cores, one nginx worker on one).
    """
    out: dict[str, Any] = {"per_load": {}}
    for load_name, ours in results.get("ours", {}).items():
        peers = {p: results[p][load_name]["rps"] for p in PEERS if load_name in results.get(p, {})}
        best = max(peers, key=lambda p: peers[p]) if peers else None
        direct = results.get("direct", {}).get(load_name)
        out["per_load"][load_name] = {
            "ours_vs_direct": round(ours["rps"] / direct["rps"], 3) if direct else None,
            "best_peer": best,
            "ours_vs_best_peer": round(ours["rps"] / peers[best], 3) if best else None,
            "added_p50_us": (ours["p50_us"] - direct["p50_us"]) if direct else None,
            "ours_cpu_vs_best_peer": _cpu_ratio(ours, results[best][load_name] if best else None),
        }
    head = out["per_load"].get(KEEPALIVE_32.name, {})
    out["ratio_vs_best_peer"] = head.get("ours_vs_best_peer")
    out["best_peer"] = head.get("best_peer")
    out["ours_vs_direct"] = head.get("ours_vs_direct")
    out["cpu_vs_best_peer"] = head.get("ours_cpu_vs_best_peer")
    out["added_p50_us"] = out["per_load"].get(KEEPALIVE_1.name, {}).get("added_p50_us")
    return out


async def run_all(plan: Plan, say: Callable[[str], None]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-dp-"))
    started: list[srv.Server] = []
    try:
        app = srv.backend(workdir)
        started.append(app)
        ours = await render_ours(workdir, app.port)
        pem = ours.task_root / "secrets" / "mesh-tls.pem"
        tls_port = ours.ports[keys.tls_port_label("http")]
        servers = {"direct": srv.direct(app)}
        servers["ours"] = srv.sidecar("ours", ours.argv, ours.env, ours.task_root, tls_port)
        started.append(servers["ours"])
        servers["haproxy"] = srv.haproxy(workdir, pem, app.port)
        started.append(servers["haproxy"])
        servers["stunnel"] = srv.stunnel(workdir, pem, app.port)
        started.append(servers["stunnel"])
        if plan.caddy:
            servers["caddy"] = srv.caddy(workdir, plan.caddy, pem, app.port)
            started.append(servers["caddy"])
        say(f"data plane: {', '.join(servers)} up; measuring")
        lua = script(workdir)
        results = interleaved(servers, plan.loads, plan, lua, plan.c1_paths, say)
        out: dict[str, Any] = {
            "seconds_per_run": plan.seconds,
            "rounds": plan.rounds,
            "paths": {n: s.notes for n, s in servers.items()},
            "nginx_conf": ours.conf_path.read_text(),
            "results": results,
            **ratios(results),
        }
        if plan.tuning:
            for s in started[1:]:
                s.stop()
            variants = {n: start_variant(ours, n, t) for n, (_, t) in VARIANTS.items()}
            started.extend(variants.values())
            say(f"data plane: tuning variants {', '.join(variants)}")
            tuned = interleaved(variants, (KEEPALIVE_1, KEEPALIVE_32, CLOSE_32), plan, lua)
            out["tuning"] = {n: {"change": VARIANTS[n][0], "results": tuned[n]} for n in variants}
        return out
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
