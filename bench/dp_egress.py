"""Data-plane row of issue 18: what the two-sidecar path costs over direct plaintext.

The path a plaintext caller takes with ``mesh.tls.upstreams``: the caller's sidecar listens on
``127.0.0.1:<port>`` in plaintext, carries each request over a kept-alive mTLS connection
(TLS 1.3, its own leaf presented, the server's verified) to the server's sidecar, which checks
the caller against ``mesh.tls.allow`` and proxies to the app. Both sidecars run their own
rendered nginx.conf, argv and env: the templates are rendered by the devstack renderer
against real OpenBao (leaves as the templates ask for them) and the Consul twin (the caller's
``service "mesh-tls.web"`` lists the server's TLS port), then both are stopped so they take
no CPU. Backend: the same ``return 200`` nginx as ``bench.data_plane``.

Measured with wrk at c=1 and c=32, keep-alive, the two paths interleaved per round; figures
are medians over rounds. Target (issue 18): under 200 us added p50 at c=1.

``python -m bench.dp_egress [--seconds S] [--rounds R]`` runs it alone and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import hvac

from bench import dp_servers as srv
from bench.data_plane import KEEPALIVE_1, KEEPALIVE_32, Plan, interleaved
from bench.wrk import script
from controller.config.mesh import load_mesh_config
from controller.vault import PkiLayout, VaultClient, VaultConnection, bootstrap_pki
from controller.vault.grants import VaultCertGrants
from crds_equivalent import keys
from devstack.consul import start_consul_twin
from devstack.sidecar_render import RenderedSidecar, render_sidecar
from devstack.template import VaultTarget
from devstack.vault import start_openbao
from reconcilers.injection.grant import Grant
from reconcilers.injection.plan import Apply, plan_job

TARGET_ADDED_P50_US = 200
PATHS = ("direct", "two-sidecars")


def server_job() -> dict[str, Any]:
    """`web`, mTLS, letting only `client` in (the demo's shape, without the check)."""
    meta = {"mesh.tls": "true", "mesh.tls.mtls": "true", "mesh.tls.allow": "client"}
    return {
        "ID": "web",
        "Name": "web",
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 1,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": "web", "PortLabel": "http"}],
                "Tasks": [{"Name": "app", "Driver": "raw_exec", "Config": {"command": "/bin/app"}}],
                "Meta": meta,
            }
        ],
    }


def client_job(listen: int) -> dict[str, Any]:
    """`client`, a pure client calling web on 127.0.0.1:<listen> (http, keep-alive)."""
    return {
        "ID": "client",
        "Name": "client",
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "client",
                "Count": 1,
                "Tasks": [{"Name": "call", "Driver": "raw_exec", "Config": {"command": "/bin/c"}}],
                "Meta": {"mesh.tls": "true", "mesh.tls.upstreams": f"web:{listen}"},
            }
        ],
    }


def _inject(job: dict[str, Any]) -> tuple[dict[str, Any], Grant]:
    """The job as the controller injects it, and the PKI role its sidecars issue from."""
    config = load_mesh_config({"MESH_SIDECAR_DRIVER": "raw_exec", "MESH_NGINX_BIN": srv.NGINX})
    decision = plan_job(job, config)
    if not isinstance(decision, Apply) or decision.grant is None:
        raise RuntimeError(f"the bench's {job['ID']} job does not plan as meshed: {decision}")
    return decision.job, decision.grant


# The sidecars here have no Nomad workload identity to log in with, so the bench's token may
# issue from the two jobs' roles directly (the identity binding has its own tests).
_ISSUE_POLICY = "bench-egress-issue"


async def render_pair(
    workdir: Path, app_port: int, listen: int
) -> tuple[RenderedSidecar, RenderedSidecar]:
    """(server, caller) rendered against real OpenBao and the Consul twin, both then stopped."""
    bao = await start_openbao(data_dir=str(workdir / "openbao"))
    consul = await start_consul_twin(check_runner=False)
    try:
        server_spec, server_grant = _inject(server_job())
        caller_spec, caller_grant = _inject(client_job(listen))
        async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as root:
            layout = PkiLayout()
            await bootstrap_pki(root, layout)
            grants = VaultCertGrants(root, layout)
            for grant in (server_grant, caller_grant):
                await grants.grant(grant.role, grant.names)
        admin = hvac.Client(url=bao.addr, token=bao.root_token)
        roles = (server_grant.role, caller_grant.role)
        rules = "".join(
            f'path "{layout.int_mount}/issue/{role}" {{ capabilities = ["update"] }}\n'
            for role in roles
        )
        admin.sys.create_or_update_policy(_ISSUE_POLICY, rules)
        token = admin.auth.token.create(policies=[_ISSUE_POLICY], ttl="1h")["auth"]
        vault = VaultTarget(bao.addr, token["client_token"])
        server = await render_sidecar(
            server_spec, vault, workdir / "web", fixed_ports={"http": app_port}
        )
        tls_port = server.ports[keys.tls_port_label("http")]
        body: dict[str, Any] = {"ID": "web-tls", "Name": "web", "Tags": [keys.TLS_SERVICE_TAG]}
        body |= {"Address": srv.HOST, "Port": tls_port}
        async with (
            aiohttp.ClientSession() as http,
            http.put(f"{consul.url}/v1/agent/service/register", json=body) as resp,
        ):
            resp.raise_for_status()
        caller = await render_sidecar(
            caller_spec, vault, workdir / "client", consul_addr=consul.address
        )
        return server, caller
    finally:
        await consul.stop()
        await bao.stop()


async def run_all(plan: Plan, say: Callable[[str], None]) -> dict[str, Any]:
    """Both paths at c=1 and c=32 keep-alive; results and the added p50 / ratio per load."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-egress-"))
    started: list[srv.Server] = []
    try:
        app = srv.backend(workdir)
        started.append(app)
        listen = srv.free_port()
        server, caller = await render_pair(workdir, app.port, listen)
        tls_port = server.ports[keys.tls_port_label("http")]
        started.append(srv.sidecar("server", server.argv, server.env, server.task_root, tls_port))
        two = srv.sidecar("caller", caller.argv, caller.env, caller.task_root, listen)
        started.append(two)
        url = f"http://{srv.HOST}:{listen}/"
        servers = {"direct": srv.direct(app), "two-sidecars": dataclasses.replace(two, url=url)}
        say("data plane (issue 18): direct and two sidecars up; measuring")
        results = interleaved(servers, (KEEPALIVE_1, KEEPALIVE_32), plan, script(workdir))
        return {"seconds_per_run": plan.seconds, "rounds": plan.rounds, **added(results)}
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def added(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per load: both paths' figures, the added p50 and the req/s ratio two-sidecars/direct."""
    per_load: dict[str, Any] = {}
    for load, two in results["two-sidecars"].items():
        direct = results["direct"][load]
        per_load[load] = {
            "direct": {k: direct[k] for k in ("rps", "p50_us", "p99_us", "errors")},
            "two_sidecars": {k: two[k] for k in ("rps", "p50_us", "p99_us", "errors")},
            "added_p50_us": two["p50_us"] - direct["p50_us"],
            "p50_ratio": round(two["p50_us"] / direct["p50_us"], 2) if direct["p50_us"] else None,
            "rps_ratio": round(two["rps"] / direct["rps"], 3),
        }
    return {"per_load": per_load, "results": results}


def summary_line(egress: dict[str, Any]) -> str:
    """What ``make bench`` prints for this row."""
    c1 = egress["per_load"][KEEPALIVE_1.name]
    c32 = egress["per_load"][KEEPALIVE_32.name]
    return (
        f"two sidecars (mTLS) vs direct: +{c1['added_p50_us']:.0f} us p50 at c1 "
        f"(target < {TARGET_ADDED_P50_US}), +{c32['added_p50_us']:.0f} us p50 at c32, "
        f"req/s x{c1['rps_ratio']} at c1, x{c32['rps_ratio']} at c32"
    )


def table_lines(egress: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section of this row."""
    c1 = egress["per_load"][KEEPALIVE_1.name]["added_p50_us"]
    met = "met" if c1 < TARGET_ADDED_P50_US else "**not met**"
    lines = [
        "### Two sidecars: caller sidecar -> server sidecar over mTLS (issue 18)",
        "",
        "A plaintext caller's request through its own sidecar (`mesh.tls.upstreams`), over a",
        "kept-alive TLS 1.3 connection with both leaves, to the server's sidecar (mTLS, `allow`)",
        "and its app, against the same request sent directly in plaintext. Medians of "
        f"{egress['rounds']} interleaved rounds of {egress['seconds_per_run']} s.",
        "",
        "| load | direct req/s | two sidecars req/s | req/s ratio | direct p50 us "
        "| two sidecars p50 us | added p50 us | p50 ratio | two sidecars p99 us | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load, r in sorted(egress["per_load"].items()):
        d, t = r["direct"], r["two_sidecars"]
        lines.append(
            f"| {load} | {d['rps']:.0f} | {t['rps']:.0f} | {r['rps_ratio']} | {d['p50_us']:.0f} "
            f"| {t['p50_us']:.0f} | {r['added_p50_us']:.0f} | {r['p50_ratio']} "
            f"| {t['p99_us']:.0f} | {d['errors'] + t['errors']} |"
        )
    lines += ["", f"Target: < {TARGET_ADDED_P50_US} us added p50 at c1: +{c1:.0f} us, {met}.", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dp_egress")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    plan = Plan(args.seconds, args.rounds, (), None, tuning=False, caddy=None)
    egress = asyncio.run(run_all(plan, lambda m: print(m, file=sys.stderr)))
    print("\n".join(table_lines(egress)))
    print(summary_line(egress))
    return 0


if __name__ == "__main__":
    sys.exit(main())
