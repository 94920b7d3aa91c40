"""A job set that mirrors the demo's calls (``controller dev --demo`` on branch egressdemo):
``web`` is mTLS and lets only ``client`` in; ``client`` is a plaintext pure client calling
``web`` through ``mesh.tls.upstreams``; ``intruder`` calls ``web`` too but is not in its allow
list (the E2E's 403); ``reports`` fronts a service and calls ``billing``, which nobody meshes.

The graph tests draw it, and ``python -m tests.support.mesh_graph_jobs FILE.png`` regenerates
the README's picture (examples/mesh-graph.png) from it without a cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from crds_equivalent import keys


def _group(name: str, service: str | None) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": name,
        "Count": 1,
        "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}] if service else []}],
        "Tasks": [
            {"Name": "app", "Driver": "docker", "Config": {"image": "app"}},
        ],
    }
    if service:
        group["Services"] = [{"Name": service, "PortLabel": "http", "Provider": "consul"}]
    return group


def _job(job_id: str, meta: dict[str, str], service: str | None) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {keys.MESH_TLS: "true", **meta},  # job meta: the LIST shows it
        "TaskGroups": [_group(job_id, service)],
    }


def demo_jobs() -> list[dict[str, Any]]:
    """The four jobs, as a user writes them (not injected)."""
    return [
        _job("web", {keys.MESH_TLS_MTLS: "true", keys.MESH_TLS_ALLOW: "client"}, "web"),
        _job("client", {keys.MESH_TLS_UPSTREAMS: "web:18080"}, None),
        _job("intruder", {keys.MESH_TLS_UPSTREAMS: "web:18081"}, None),
        _job("reports", {keys.MESH_TLS_UPSTREAMS: "billing:9001/tcp"}, "reports"),
    ]


if __name__ == "__main__":
    from controller.ctl.graph import mesh_graph, to_dot
    from controller.ctl.graph_io import write_png
    from crds_equivalent.config import MeshConfig

    write_png(to_dot(mesh_graph(demo_jobs(), MeshConfig())), Path(sys.argv[1]))
