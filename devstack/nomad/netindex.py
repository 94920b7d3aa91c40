"""One node's port accounting as the scheduler does it: Nomad's ``NetworkIndex``.

Followed from the source (hashicorp/nomad, nomad/structs/network.go and
scheduler/feasible/rank.go, ``BinPackIterator.Next``):
- the index of a node is built from its PROPOSED allocations (scheduler/feasible/context.go,
  ``EvalContext.ProposedAllocs``): the node's allocations in the state store, minus those this
  plan stops (``plan.NodeUpdate``) or preempts, minus the client-terminal ones
  (``ClientTerminalStatus``: complete, failed, lost; an allocation told to stop whose client
  still runs it keeps its ports), plus those this plan already placed there;
- ``AddAllocs`` marks each allocation's ``AllocatedResources.Shared.Ports`` per ``HostIP``
  (a port marked twice collides unless ``IgnoreCollision``), or, when an allocation has no
  ``Shared.Ports``, the group networks and each task's first network; a collision there
  exhausts the node on the dimension ``network: port collision``;
- ``AssignPorts`` (the group's first network) refuses a reserved port already used on the
  address unless it ignores collisions: ``reserved port collision <label>=<value>``, which
  ``BinPackIterator`` records as the exhausted dimension ``network: <that error>``; the offer
  is then reserved (``AddReservedPorts``) so a task's own ports cannot take it, and
  ``AssignTaskNetwork`` (a task's deprecated ``Resources.Networks[0]``) refuses its reserved
  ports with the same text.

The twin's nodes have one address each, so every port of a node is on that address. Dynamic
ports are not checked here: the twin draws them from the free ones (``Node.take_port``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# nomad/structs/alloc.go terminalAllocationStatuses (ClientTerminalStatus).
CLIENT_TERMINAL = frozenset({"complete", "failed", "lost"})
PORT_COLLISION = "network: port collision"


def _ports(values: Any) -> list[dict[str, Any]]:
    return [p for p in values or [] if isinstance(p, dict)]


def alloc_ports(alloc: Mapping[str, Any]) -> list[tuple[str, int, bool]]:
    """(host IP, port, ignore collision) for every port ``AddAllocs`` marks for ``alloc``."""
    resources = alloc.get("AllocatedResources") or {}
    shared = resources.get("Shared") or {}
    if shared.get("Ports"):
        return [
            (p.get("HostIP", ""), int(p.get("Value", 0)), bool(p.get("IgnoreCollision")))
            for p in _ports(shared["Ports"])
        ]
    out: list[tuple[str, int, bool]] = []
    networks = list(shared.get("Networks") or [])
    for task in (resources.get("Tasks") or {}).values():
        networks += ((task or {}).get("Networks") or [])[:1]
    for net in networks:
        ip = net.get("IP", "")
        for key in ("ReservedPorts", "DynamicPorts"):
            out += [(ip, int(p.get("Value", 0)), False) for p in _ports(net.get(key))]
    return out


def used_ports(allocs: Iterable[Mapping[str, Any]]) -> tuple[dict[str, set[int]], bool]:
    """``NetworkIndex.AddAllocs``: the ports in use per host IP, and whether two collided."""
    used: dict[str, set[int]] = {}
    collide = False
    for alloc in allocs:
        if alloc.get("ClientStatus") in CLIENT_TERMINAL:
            continue
        for ip, port, ignore in alloc_ports(alloc):
            taken = used.setdefault(ip, set())
            if port in taken:
                collide = collide or not ignore
            taken.add(port)
    return used, collide


def static_ports(group: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(label, value) of the static ports ``group`` asks for that must not collide: its first
    network's reserved ports (the only one ``BinPackIterator`` asks for), then each task's
    first network's."""
    asks = [n for n in (group.get("Networks") or [])[:1] if n]
    for task in group.get("Tasks") or []:
        asks += [n for n in ((task.get("Resources") or {}).get("Networks") or [])[:1] if n]
    return [
        (p.get("Label", ""), int(p.get("Value", 0)))
        for net in asks
        for p in _ports(net.get("ReservedPorts"))
        if not p.get("IgnoreCollision")
    ]


def exhausted(group: Mapping[str, Any], address: str, proposed: Iterable[Mapping[str, Any]]) -> str:
    """The dimension on which ``group`` exhausts the node at ``address`` ("" if it fits)."""
    used, collide = used_ports(proposed)
    if collide:
        return PORT_COLLISION
    taken = set(used.get(address, set()))
    for label, value in static_ports(group):
        if value in taken:
            return f"network: reserved port collision {label}={value}"
        taken.add(value)
    return ""


def exhaust_node(metric: dict[str, Any], dimension: str) -> None:
    """``AllocMetric.ExhaustedNode`` for a node without a NodeClass (the twin's nodes)."""
    metric["NodesExhausted"] += 1
    counts = metric["DimensionExhausted"] or {}
    counts[dimension] = counts.get(dimension, 0) + 1
    metric["DimensionExhausted"] = counts


def exhaust_resources(metric: dict[str, Any], group: Mapping[str, Any]) -> None:
    """``AllocMetric.ExhaustResources``: once a dimension is exhausted, a zeroed ``Resources``
    per task (only memory and cpu dimensions add amounts, and ports are neither)."""
    if metric["DimensionExhausted"] is None:
        return
    rows = metric["ResourcesExhausted"] or {}
    for task in group.get("Tasks") or []:
        rows.setdefault(task["Name"], _zero_resources())
    metric["ResourcesExhausted"] = rows


def _zero_resources() -> dict[str, Any]:
    """structs.Resources, zeroed, in its field order."""
    return {
        "CPU": 0,
        "Cores": 0,
        "MemoryMB": 0,
        "MemoryMaxMB": 0,
        "DiskMB": 0,
        "IOPS": 0,
        "Networks": None,
        "Devices": None,
        "NUMA": None,
        "SecretsMB": 0,
    }
