"""PURE: the service graph of the mesh — who calls whom through it — from the meshed jobs, as
Graphviz DOT.

Nodes are the names a certificate carries: each service a meshed group fronts (boxes), and each
pure client, named after its job ID (ellipses). An upstream no meshed group fronts is drawn
too, dashed and grey, as ``not meshed``. Edges are ``mesh.tls.upstreams`` entries, caller ->
upstream, labelled with the listener port and protocol and with what the wire is:
- ``mTLS``: every group fronting the upstream asks for client certificates (``mesh.tls.mtls``)
  and lets the caller in;
- ``TLS``: the upstream verifies no client certificate;
- ``refused``: red and dashed, with why — the caller's name is not in the upstream's
  ``mesh.tls.allow`` (403 or a closed connection), or the upstream is not meshed (the listener
  answers 503 or closes; never plaintext).

The caller's name is what its certificate says (``fronting.common_name``, or the job ID of a
pure client), as ``allow`` matches it. The graph is of configuration, not of traffic: it says
what the mesh lets through, not what was called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec, SpecError, parse_job_specs
from reconcilers.injection import fronting, jobview
from reconcilers.injection.identity import BadClientName, pure_client_name
from reconcilers.injection.inject import UndoError, uninject
from reconcilers.injection.plan import default_ttl_seconds

MTLS, TLS, REFUSED = "mtls", "tls", "refused"


@dataclass
class Node:
    """A name in the mesh: a fronted service or a pure client."""

    name: str
    kind: str  # service | client | unmeshed
    jobs: set[str] = field(default_factory=set)  # "<namespace>/<job>" of its groups
    mtls: list[bool] = field(default_factory=list)  # per fronting group
    allow: list[tuple[str, ...]] = field(default_factory=list)  # per fronting group, () = any


@dataclass(frozen=True)
class Edge:
    """One upstream entry of one caller group."""

    caller: str
    service: str
    port: int
    protocol: str
    kind: str = TLS  # mtls | tls | refused
    why: str = ""  # for refused


@dataclass
class MeshGraph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)


def _specs(
    job: Mapping[str, Any], config: MeshConfig
) -> tuple[dict[str, Any], dict[str, MeshSpec]]:
    try:
        user = uninject(job)
        return user, parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(config))
    except (UndoError, SpecError):
        return {}, {}


def _add_job(graph: MeshGraph, job: Mapping[str, Any], config: MeshConfig) -> list[Edge]:
    """The job's nodes into ``graph``; its edges (unjudged) returned."""
    user, specs = _specs(job, config)
    where = f"{jobview.namespace(user)}/{jobview.job_id(user)}" if user else ""
    edges: list[Edge] = []
    for group in jobview.groups(user):
        spec = specs.get(jobview.group_name(group))
        if spec is None or not spec.enabled:
            continue
        try:
            inputs = fronting.group_inputs(user, group, spec)
        except jobview.UnresolvedName:
            continue
        if inputs.ports:
            caller = fronting.common_name(user, group, inputs).lower()
            for name in fronting.service_names(user, group, inputs):
                node = graph.nodes.setdefault(name.lower(), Node(name.lower(), "service"))
                node.jobs.add(where)
                node.mtls.append(spec.mtls)
                node.allow.append(spec.allow)
        elif spec.upstreams:
            try:
                caller = pure_client_name(jobview.job_id(user))
            except BadClientName:
                continue  # Invalid: the status says why
            graph.nodes.setdefault(caller, Node(caller, "client")).jobs.add(where)
        else:
            continue
        edges.extend(
            Edge(caller, u.service.lower(), u.port, str(u.protocol)) for u in spec.upstreams
        )
    return edges


def _judge(graph: MeshGraph, edge: Edge) -> Edge:
    target = graph.nodes.get(edge.service)
    if target is None or target.kind != "service":
        return replace(edge, kind=REFUSED, why="not meshed")
    shut = [allow for allow in target.allow if allow and edge.caller not in allow]
    if shut:
        return replace(edge, kind=REFUSED, why=f"{edge.caller} not in allow")
    return replace(edge, kind=MTLS if all(target.mtls) else TLS)


def mesh_graph(jobs: Iterable[Mapping[str, Any]], config: MeshConfig) -> MeshGraph:
    """The graph of the given jobs (unmeshed and invalid ones add nothing)."""
    graph = MeshGraph()
    raw: list[Edge] = []
    for job in jobs:
        if not jobview.is_stopped(job):
            raw.extend(_add_job(graph, job, config))
    for edge in raw:
        if edge.service not in graph.nodes:
            graph.nodes[edge.service] = Node(edge.service, "unmeshed")
    graph.edges = sorted(
        {_judge(graph, e) for e in raw}, key=lambda e: (e.caller, e.service, e.port)
    )
    return graph


def _quote(text: str) -> str:
    """A DOT string: backslashes and quotes escaped, a newline written as DOT's centred one."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


NODE_STYLE = {
    "service": 'shape=box, style="rounded,filled", fillcolor="#dbeafe", color="#1d4ed8"',
    "client": 'shape=ellipse, style=filled, fillcolor="#fef3c7", color="#b45309"',
    "unmeshed": 'shape=box, style="rounded,dashed", color="#6b7280", fontcolor="#6b7280"',
}
EDGE_STYLE = {
    MTLS: 'color="#15803d", fontcolor="#15803d", penwidth=2',
    TLS: 'color="#1d4ed8", fontcolor="#1d4ed8"',
    REFUSED: 'color="#b91c1c", fontcolor="#b91c1c", style=dashed',
}


def _node_label(node: Node) -> str:
    detail = {"service": "", "client": "pure client", "unmeshed": "not meshed"}[node.kind]
    jobs = ", ".join(sorted(node.jobs))
    return "\n".join(part for part in (node.name, detail, jobs) if part)


def _edge_label(edge: Edge) -> str:
    what = {MTLS: "mTLS", TLS: "TLS", REFUSED: f"refused: {edge.why}"}[edge.kind]
    return f"{what}\n:{edge.port}/{edge.protocol}"


def to_dot(graph: MeshGraph) -> str:
    """The graph as DOT text (left to right, legend-free: the labels say it all)."""
    lines = [
        "digraph mesh {",
        "  rankdir=LR;",
        '  graph [fontname="Helvetica", label="nomad-tls-mesh", labelloc=t];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        label = _quote(_node_label(node))
        lines.append(f"  {_quote(name)} [label={label}, {NODE_STYLE[node.kind]}];")
    for edge in graph.edges:
        label = _quote(_edge_label(edge))
        lines.append(
            f"  {_quote(edge.caller)} -> {_quote(edge.service)} "
            f"[label={label}, {EDGE_STYLE[edge.kind]}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
