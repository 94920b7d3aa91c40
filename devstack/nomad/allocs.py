"""Building a new allocation: name, node, ports and AllocatedResources.

Dynamic ports get a host port from the node's pool; static ports keep their value.
``AllocatedResources.Shared.Ports`` carries ``HostIP`` = the node's own loopback
address, which is what NOMAD_ADDR_* and the Consul registrations use.
"""

from __future__ import annotations

import random
from typing import Any

from devstack.nomad.codec import new_id, now_ns, omitempty
from devstack.nomad.nodes import Node
from devstack.nomad.shape import shape


def new_alloc(
    job: dict[str, Any],
    group: str,
    index: int,
    node: Node,
    eval_id: str,
    deployment_id: str,
    raft_index: int,
    rng: random.Random,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    tg = next(g for g in job["TaskGroups"] if g["Name"] == group)
    now = now_ns()
    shared_nets, ports = _networks(tg, node, rng)
    tasks = tg["Tasks"] or []
    resources = {
        "Tasks": {
            t["Name"]: {
                "Cpu": {"CpuShares": (t["Resources"] or {}).get("CPU", 0), "ReservedCores": None},
                "Memory": {
                    "MemoryMB": (t["Resources"] or {}).get("MemoryMB", 0),
                    "MemoryMaxMB": (t["Resources"] or {}).get("MemoryMaxMB", 0),
                },
                "Networks": _task_networks(t, node, rng),
                "Devices": None,
            }
            for t in tasks
        },
        "TaskLifecycles": {t["Name"]: t.get("Lifecycle") for t in tasks},
        "Shared": {
            "Networks": shared_nets,
            "DiskMB": (tg.get("EphemeralDisk") or {}).get("SizeMB", 0),
            "Ports": ports,
        },
    }
    return {
        "ID": new_id(),
        "Namespace": job["Namespace"],
        "EvalID": eval_id,
        "Name": f"{job['ID']}.{group}[{index}]",
        "NodeID": node.id,
        "NodeName": node.name,
        "JobID": job["ID"],
        "Job": job,
        "TaskGroup": group,
        "Resources": None,
        "SharedResources": None,
        "TaskResources": None,
        "AllocatedResources": resources,
        "Metrics": _metrics(),
        "DesiredStatus": "run",
        "DesiredDescription": "",
        "DesiredTransition": {
            "Migrate": None,
            "Reschedule": None,
            "ForceReschedule": None,
            "NoShutdownDelay": None,
            "MigrateDisablePlacement": None,
        },
        "ClientStatus": "pending",
        "ClientDescription": "",
        "TaskStates": None,
        "AllocStates": None,
        "PreviousAllocation": previous["ID"] if previous else "",
        "NextAllocation": "",
        "DeploymentID": deployment_id,
        "DeploymentStatus": None,
        "RescheduleTracker": None,
        "NetworkStatus": None,
        "FollowupEvalID": "",
        "PreemptedAllocations": None,
        "PreemptedByAllocation": "",
        "SigningKeyID": "",
        "CreateIndex": raft_index,
        "ModifyIndex": raft_index,
        "AllocModifyIndex": raft_index,
        "CreateTime": now,
        "ModifyTime": now,
    }


def _networks(
    tg: dict[str, Any], node: Node, rng: random.Random
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    nets: list[dict[str, Any]] = []
    ports: list[dict[str, Any]] = []
    for net in tg.get("Networks") or []:
        out = dict(net)
        out["IP"] = node.address
        for key in ("ReservedPorts", "DynamicPorts"):
            filled = []
            for port in net.get(key) or []:
                value = port.get("Value", 0)
                if key == "DynamicPorts":
                    value = node.take_port(rng)
                else:
                    node.reserve(value)
                filled.append({**port, "Value": value})
                ports.append(
                    omitempty(
                        {
                            "Label": port.get("Label", ""),
                            "Value": value,
                            "To": port.get("To", 0),
                            "HostIP": node.address,
                            "IgnoreCollision": port.get("IgnoreCollision", False),
                        }
                    )
                )
            out[key] = filled or None
        nets.append(shape("NetworkResource", out))
    return nets or None, ports or None


def _task_networks(
    task: dict[str, Any], node: Node, rng: random.Random
) -> list[dict[str, Any]] | None:
    """A task's deprecated ``Resources.Networks``, allocated as Nomad allocates them.

    scheduler/rank.go (BinPackIterator.Next) asks only for ``task.Resources.Networks[0]`` and
    stores the offer as ``AllocatedResources.Tasks[<task>].Networks = [offer]``;
    nomad/structs/network.go (NetworkIndex.AssignTaskNetwork) builds the offer with Mode, IP =
    the node's address, MBits, DNS, the reserved ports as asked and each dynamic port given a
    host port (``To: -1`` becomes that port). Task ports never reach ``Shared.Ports``.
    """
    asked = [n for n in ((task.get("Resources") or {}).get("Networks") or []) if n]
    if not asked:
        return None
    ask = asked[0]
    reserved = [dict(p) for p in ask.get("ReservedPorts") or []]
    for port in reserved:
        node.reserve(port.get("Value", 0))
    dynamic = []
    for port in ask.get("DynamicPorts") or []:
        value = node.take_port(rng)
        to = port.get("To", 0)
        dynamic.append({**port, "Value": value, "To": value if to == -1 else to})
    offer = {
        "Mode": ask.get("Mode", ""),
        "Device": ask.get("Device", ""),
        "IP": node.address,
        "MBits": ask.get("MBits", 0),
        "DNS": ask.get("DNS"),
        "ReservedPorts": reserved or None,
        "DynamicPorts": dynamic or None,
    }
    return [shape("NetworkResource", offer)]


def _metrics() -> dict[str, Any]:
    return {
        "NodesEvaluated": 0,
        "NodesFiltered": 0,
        "NodesInPool": 0,
        "NodesAvailable": None,
        "ClassFiltered": None,
        "ConstraintFiltered": None,
        "NodesExhausted": 0,
        "ClassExhausted": None,
        "DimensionExhausted": None,
        "QuotaExhausted": None,
        "ResourcesExhausted": None,
        "Scores": None,
        "ScoreMetaData": None,
        "AllocationTime": 0,
        "CoalescedFailures": 0,
    }
