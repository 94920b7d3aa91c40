"""Which node each placement of an evaluation goes to when its group reserves static ports.

Nomad's generic scheduler (scheduler/generic_sched.go, ``computePlacements``) places one
allocation at a time: the plan's stops come first (they free their ports for the placements,
``EvalContext.ProposedAllocs`` removes ``plan.NodeUpdate``), a destructive update stops its
previous allocation just before selecting (``StopPreviousAlloc`` -> ``AppendStoppedAlloc``),
and a placement that finds no node puts that stop back (``PopUpdate``: the old allocation
keeps running). ``BinPackIterator`` exhausts each node whose ``NetworkIndex`` refuses the
group's static ports (``netindex``); with no node left the placement fails, its
``AllocMetric`` goes to ``FailedTGAllocs`` (later failures of the group only add
``CoalescedFailures``) and the evaluation leaves a blocked eval and ``QueuedAllocations``.

The twin decides all of it before it writes the plan (as Nomad computes the plan before
submitting it), in the order ``Scheduler._apply`` places, and hands the chosen nodes to
``_apply`` in that order. Groups without static ports are left to the usual pick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from devstack.nomad import netindex
from devstack.nomad.nodes import Node
from devstack.nomad.reconcile import GroupPlan

# (group, candidate nodes, the group's placements so far per node ID) -> the node to place on
Pick = Callable[[str, list[Node], dict[str, int]], Node]


class PortFit:
    """The proposed allocations of every node during one evaluation."""

    def __init__(self, nodes: list[Node], allocs: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.proposed: dict[str, dict[str, dict[str, Any]]] = {n.id: {} for n in nodes}
        for alloc in allocs:
            if alloc["NodeID"] in self.proposed:
                self.proposed[alloc["NodeID"]][alloc["ID"]] = alloc

    def stop(self, alloc: Mapping[str, Any]) -> None:
        self.proposed.get(alloc["NodeID"], {}).pop(alloc["ID"], None)

    def unstop(self, alloc: dict[str, Any]) -> None:
        self.proposed.setdefault(alloc["NodeID"], {})[alloc["ID"]] = alloc

    def dimension(self, group: Mapping[str, Any], node: Node) -> str:
        return netindex.exhausted(group, node.address, self.proposed[node.id].values())

    def place(self, group: Mapping[str, Any], node: Node, key: str) -> None:
        """Count a placement's static ports on ``node`` (its dynamic ones avoid them)."""
        ports = [
            {"Label": label, "Value": value, "HostIP": node.address}
            for label, value in netindex.static_ports(group)
        ]
        alloc: dict[str, Any] = {"ID": key, "NodeID": node.id, "ClientStatus": "pending"}
        alloc["AllocatedResources"] = {"Shared": {"Ports": ports}}
        self.proposed[node.id][key] = alloc


def fit_plans(
    job: dict[str, Any],
    plans: list[GroupPlan],
    fit: PortFit,
    allowed: Mapping[str, list[Node]],
    metric: Callable[[], dict[str, Any]],
    pick: Pick,
) -> tuple[dict[str, deque[Node]], dict[str, dict[str, Any]]]:
    """Trim ``plans`` to the placements whose static ports fit; (nodes per group in
    ``_apply``'s order, ``FailedTGAllocs``). Only groups that reserve static ports."""
    groups = {g["Name"]: g for g in job["TaskGroups"] or []}
    for plan in plans:  # every stop of the plan frees its ports before any placement
        for alloc, _ in plan.stop:
            fit.stop(alloc)
        for alloc in plan.migrate:
            fit.stop(alloc)
    chosen: dict[str, deque[Node]] = {}
    failed: dict[str, dict[str, Any]] = {}
    for plan in plans:
        group = groups.get(plan.name) or {}
        if not netindex.static_ports(group):
            continue
        placer = _Placer(plan.name, group, fit, allowed.get(plan.name, fit.nodes), metric, pick)
        plan.reschedule = [a for a in plan.reschedule if placer.one(avoid=a["NodeID"])]
        plan.migrate = [a for a in plan.migrate if placer.one(avoid=a["NodeID"], back=a)]
        # system_util.go evictAndPlace: a system job's replacement stays on the old node
        system = job["Type"] in ("system", "sysbatch")
        plan.destructive = [
            a
            for a in plan.destructive
            if placer.one(previous=a, target=a["NodeID"] if system else "")
        ]
        plan.canaries = [i for i in plan.canaries if placer.one()]
        if plan.node_targets:
            keep = [i for i, nid in enumerate(plan.node_targets) if placer.one(target=nid)]
            plan.place = [plan.place[i] for i in keep]
            plan.node_targets = [plan.node_targets[i] for i in keep]
        else:
            plan.place = [i for i in plan.place if placer.one()]
        chosen[plan.name] = placer.nodes
        if placer.failure is not None:
            failed[plan.name] = placer.failure
    return chosen, failed


class _Placer:
    """One group's placements, one at a time (``computePlacements`` for one group)."""

    def __init__(
        self,
        name: str,
        group: Mapping[str, Any],
        fit: PortFit,
        allowed: list[Node],
        metric: Callable[[], dict[str, Any]],
        pick: Pick,
    ) -> None:
        self.name, self.group, self.fit, self.allowed = name, group, fit, allowed
        self.metric, self.pick = metric, pick
        self.nodes: deque[Node] = deque()
        self.failure: dict[str, Any] | None = None
        self.placed: dict[str, int] = {}  # node ID -> this group's placements in this eval

    def one(
        self,
        avoid: str = "",
        previous: dict[str, Any] | None = None,
        target: str = "",
        back: dict[str, Any] | None = None,
    ) -> bool:
        """Place one allocation; False (and the failure recorded) when no node fits."""
        if self.failure is not None:  # the group already failed: only counted
            self.failure["CoalescedFailures"] += 1
            netindex.exhaust_resources(self.failure, self.group)
            return self._undo(back)
        if previous is not None:
            self.fit.stop(previous)  # StopPreviousAlloc: its ports are free for this pick
        metric = self.metric()
        fits: list[Node] = []
        for node in self.allowed:
            if target and node.id != target:
                continue
            metric["NodesEvaluated"] += 1
            dimension = self.fit.dimension(self.group, node)
            if dimension:
                netindex.exhaust_node(metric, dimension)
            else:
                fits.append(node)
        candidates = [n for n in fits if n.id != avoid] or fits
        if not candidates:
            if previous is not None:
                self.fit.unstop(previous)  # PopUpdate: the old allocation keeps running
            netindex.exhaust_resources(metric, self.group)
            self.failure = metric
            return self._undo(back)
        node = self.pick(self.name, candidates, self.placed)
        self.placed[node.id] = self.placed.get(node.id, 0) + 1
        self.fit.place(self.group, node, f"{self.name}#{len(self.nodes)}")
        self.nodes.append(node)
        return True

    def _undo(self, back: dict[str, Any] | None) -> bool:
        if back is not None:
            self.fit.unstop(back)  # a migration that cannot be placed is not stopped either
        return False
