"""controllerctl graph, the pure part: meshed jobs -> nodes and edges -> DOT. Assertions are on
the edges and their attributes, not on the whole text."""

from __future__ import annotations

import re
from typing import Any

from controller.ctl.graph import MTLS, REFUSED, TLS, mesh_graph, to_dot
from crds_equivalent.config import MeshConfig
from reconcilers.injection.plan import Apply, plan_job
from tests.support.mesh_graph_jobs import demo_jobs

CONFIG = MeshConfig()


def injected(job: dict[str, Any]) -> dict[str, Any]:
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Apply), decision
    return decision.job


def edge_attrs(dot: str, caller: str, service: str) -> dict[str, str]:
    line = next(
        line for line in dot.splitlines() if line.strip().startswith(f'"{caller}" -> "{service}"')
    )
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\]]+)', line))


def node_attrs(dot: str, name: str) -> dict[str, str]:
    line = next(line for line in dot.splitlines() if line.strip().startswith(f'"{name}" ['))
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\]]+)', line))


def test_the_demo_graph_has_one_mtls_edge_and_two_refused_ones() -> None:
    graph = mesh_graph([injected(j) for j in demo_jobs()], CONFIG)
    got = [(e.caller, e.service, e.port, e.protocol, e.kind, e.why) for e in graph.edges]
    assert got == [
        ("client", "web", 18080, "http", MTLS, ""),
        ("intruder", "web", 18081, "http", REFUSED, "intruder not in allow"),
        ("reports", "billing", 9001, "tcp", REFUSED, "not meshed"),
    ]
    kinds = {name: node.kind for name, node in graph.nodes.items()}
    assert kinds == {
        "web": "service",
        "reports": "service",
        "client": "client",
        "intruder": "client",
        "billing": "unmeshed",
    }


def test_injected_and_user_jobs_draw_the_same_graph() -> None:
    assert to_dot(mesh_graph(demo_jobs(), CONFIG)) == to_dot(
        mesh_graph([injected(j) for j in demo_jobs()], CONFIG)
    )


def test_dot_labels_and_styles_say_mtls_refused_and_not_meshed() -> None:
    dot = to_dot(mesh_graph(demo_jobs(), CONFIG))
    assert dot.startswith("digraph mesh {") and dot.rstrip().endswith("}")
    mtls = edge_attrs(dot, "client", "web")
    assert mtls["label"] == '"mTLS\\n:18080/http"'
    assert mtls["penwidth"] == "2" and "style" not in mtls
    refused = edge_attrs(dot, "intruder", "web")
    assert refused["label"] == '"refused: intruder not in allow\\n:18081/http"'
    assert refused["style"] == "dashed" and refused["color"] == '"#b91c1c"'
    unmeshed = edge_attrs(dot, "reports", "billing")
    assert unmeshed["label"] == '"refused: not meshed\\n:9001/tcp"'
    assert node_attrs(dot, "billing")["label"] == '"billing\\nnot meshed"'
    assert node_attrs(dot, "client")["label"] == '"client\\npure client\\ndefault/client"'
    assert node_attrs(dot, "client")["shape"] == "ellipse"
    assert node_attrs(dot, "web")["label"] == '"web\\ndefault/web"'


def test_a_server_without_mtls_is_a_tls_edge_and_allow_lets_listed_callers_in() -> None:
    jobs = demo_jobs()
    jobs[0]["Meta"] = {"mesh.tls": "true"}  # web: TLS, anyone in
    graph = mesh_graph(jobs, CONFIG)
    kinds = {(e.caller, e.service): e.kind for e in graph.edges}
    assert kinds[("client", "web")] == kinds[("intruder", "web")] == TLS


def test_unmeshed_stopped_and_invalid_jobs_add_nothing() -> None:
    jobs = demo_jobs()
    jobs[1]["Stop"] = True  # client stopped
    jobs[2]["Meta"]["mesh.tls"] = "false"  # intruder unmeshed
    jobs[3]["Meta"]["mesh.tls.upstreams"] = "billing"  # invalid
    graph = mesh_graph(jobs, CONFIG)
    assert graph.edges == [] and set(graph.nodes) == {"web"}
