"""PURE: a job's calls between services — where each upstream listener is reserved, and the
edges (caller group -> service) as facts for the status.

Listener reservation. In a namespaced (bridge/CNI) group the listener ``127.0.0.1:<port>`` is
inside the allocation's own network namespace: nothing else can collide with it, and no host
port is needed. In host mode every allocation on the node shares one loopback, so two
allocations calling ``billing:9001`` would collide. The port the app dials is fixed by the
user (an old app calls ``127.0.0.1:9001``), so the listener is reserved as a STATIC port of
that number in the group's first network (``mesh_tls_upstream_<port>``): the scheduler never
places two allocations reserving one static port on one node (scheduler/rank.go,
BinPackIterator: the node's NetworkIndex refuses a port already used), and Nomad's validation
refuses a group that reserves it twice. A dynamic port exported as ``NOMAD_ADDR_*`` was the
alternative; it would force every app to read an env var and change, which is what the
feature exists to avoid. nginx binds only ``127.0.0.1:<port>``, never the reserved host
address, so the plaintext listener is not reachable from other hosts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crds_equivalent import keys
from crds_equivalent.egress import Upstream
from crds_equivalent.spec import MeshSpec
from reconcilers.injection import jobview
from reconcilers.injection.rewrite import NETWORK_ORDER, set_ordered


def group_namespaced(group: Mapping[str, Any]) -> bool:
    """The group's first network gives it its own namespace (bridge/CNI)."""
    first = jobview.as_list(group.get("Networks"))[:1]
    return bool(first) and jobview.is_namespaced_mode(
        jobview.as_str(jobview.as_map(first[0]).get("Mode"))
    )


def listener_port(upstream: Upstream) -> dict[str, Any]:
    """The static port reserving one upstream listener (host mode)."""
    return {
        "Label": keys.upstream_port_label(upstream.port),
        "Value": upstream.port,
        "To": 0,
        "HostNetwork": "",
    }


def reserve_listeners(
    networks: Sequence[Any], upstreams: Sequence[Upstream], namespaced: bool
) -> list[Any]:
    """A new network list with each upstream's static port in the first network (host mode
    only; a ``{"Mode": "host"}`` network is added when the group has none)."""
    out = list(networks)
    if namespaced or not upstreams:
        return out
    if not out:
        out.append({"Mode": "host"})
    out[0] = network = dict(out[0])  # only the first network changes; the rest are shared
    reserved = jobview.as_list(network.get("ReservedPorts"))
    listeners = [listener_port(u) for u in upstreams]
    set_ordered(network, "ReservedPorts", [*reserved, *listeners], NETWORK_ORDER)
    return out


def listener_conflict(group: Mapping[str, Any], spec: MeshSpec) -> str | None:
    """An upstream port the group already uses, said as the planner says it; or None.

    Host mode: a static port of that number anywhere in the group (Nomad refuses a port
    reserved twice, "Static port %d already reserved", TaskGroup.validateNetworks), or a
    fronted label ``upstream_<port>`` whose TLS port would take the listener's label.
    Namespaced: a port whose in-namespace number (``To``, or a static port's value when it has
    no ``To``) is the listener's — the app would already be bound there.
    """
    namespaced = group_namespaced(group)
    views = [*jobview.ports(group).values(), *jobview.task_ports(group)]
    for upstream in spec.upstreams:
        entry = f'"{upstream.service}:{upstream.port}" in meta "{keys.MESH_TLS_UPSTREAMS}"'
        for view in views:
            to = view.port.get("To")
            inside = to if isinstance(to, int) and to > 0 else view.static_value
            taken = inside if namespaced and view.task is None else view.static_value
            if taken == upstream.port and view.port.get("IgnoreCollision") is not True:
                owner = f"task {view.task}" if view.task else "the group network"
                return (
                    f"port {upstream.port} of upstream {entry} is already used by {owner} "
                    f'(port "{view.label}"); the sidecar listens on 127.0.0.1:{upstream.port}: '
                    "give the upstream another port"
                )
        clash = keys.upstream_port_label(upstream.port).removeprefix(keys.TLS_PORT_PREFIX)
        if not namespaced and clash in spec.ports:
            return (
                f'fronted port label "{clash}" would give its TLS port the label of the '
                f"listener of upstream {entry}; "
                "rename the port"
            )
    return None


@dataclass(frozen=True)
class UpstreamEdge:
    """One call the mesh carries: a caller group's listener to a service's TLS instances.

    The facts the controller's status needs to say "upstream billing has no healthy instance"
    or "upstream billing is not meshed" (a follow-up reads the catalog for each edge).
    """

    namespace: str
    job: str
    group: str
    service: str
    port: int
    protocol: str
    provider: str


@dataclass(frozen=True)
class AllowList:
    """The services an mTLS group lets in (``mesh.tls.allow``); a name no job fronts is a
    warning for the status, not an error."""

    namespace: str
    job: str
    group: str
    services: tuple[str, ...]


def upstream_edges(job: Mapping[str, Any], specs: Mapping[str, MeshSpec]) -> list[UpstreamEdge]:
    """Every upstream of every meshed group of the job, in group then meta order."""
    edges: list[UpstreamEdge] = []
    for group in jobview.groups(job):
        spec = specs.get(jobview.group_name(group))
        if spec is None or not spec.enabled:
            continue
        edges.extend(
            UpstreamEdge(
                jobview.namespace(job),
                jobview.job_id(job),
                spec.group,
                u.service,
                u.port,
                str(u.protocol),
                str(u.provider),
            )
            for u in spec.upstreams
        )
    return edges


def allow_lists(job: Mapping[str, Any], specs: Mapping[str, MeshSpec]) -> list[AllowList]:
    """The allow list of every meshed group that has one."""
    return [
        AllowList(jobview.namespace(job), jobview.job_id(job), spec.group, spec.allow)
        for spec in specs.values()
        if spec.enabled and spec.allow
    ]
