"""Host volumes and CSI volumes as the scheduler sees them, and the minimal CSI volume API.

Placement follows nomad v1.10.5 ``scheduler/feasible.go``: ``HostVolumeChecker.hasVolumes``
(the node must have every requested static host volume; a read-write request needs a volume
the node did not configure ``read_only``) and ``CSIVolumeChecker.isFeasible`` (volume
registered, plugin on the client, read/write schedulability, writer claims of other jobs).
A node that fails records the checker's text in the ``AllocMetric`` exactly as
``AllocMetric.FilterNode`` (``nomad/structs/structs.go``) counts it.

CSI volumes are registered with ``PUT /v1/volume/csi/:id`` (``nomad/csi_endpoint.go``
``CSIVolume.Register``); plugins exist only as the nodes' fingerprinted node plugins, so a
plugin's ``NodesHealthy`` is the number of nodes advertising it and ``Schedulable`` is
``NodesHealthy > 0`` (``state_store.go`` ``csiVolumeDenormalizePluginsTxn``, no controller).
Claims are derived from live allocations: an allocation claims from its placement until it
is client-terminal (Nomad's client claims at prerun and the volumewatcher releases after).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devstack.nomad.nodes import Node
from devstack.nomad.wire import client_terminal

# scheduler/feasible.go FilterConstraint* texts.
FILTER_HOST_VOLUMES = "missing compatible host volumes"
FILTER_CSI_PLUGIN = "CSI plugin {plugin} is missing from client {node}"
FILTER_CSI_NOT_FOUND = "missing CSI Volume {source}"
FILTER_CSI_NO_READ = "CSI volume {id} is unschedulable or has exhausted its available reader claims"
FILTER_CSI_NO_WRITE = "CSI volume {id} is unschedulable or is read-only"
FILTER_CSI_IN_USE = "CSI volume {id} has exhausted its available writer claims"

WRITER_MODES = ("single-node-writer", "multi-node-single-writer", "multi-node-multi-writer")
ACCESS_MODES = (
    "single-node-reader-only",
    "single-node-writer",
    "multi-node-reader-only",
    "multi-node-single-writer",
    "multi-node-multi-writer",
)
ATTACHMENT_MODES = ("block-device", "file-system")


def ci(obj: Any, key: str) -> Any:
    """A field of a raw (``any``-typed) struct, matched case-insensitively as Go decodes."""
    if not isinstance(obj, dict):
        return None
    for k, v in obj.items():
        if k.lower() == key.lower():
            return v
    return None


def group_volumes(group: dict[str, Any]) -> list[dict[str, Any]]:
    """A task group's ``Volumes`` (stored as submitted) as normalised requests."""
    raw = group.get("Volumes") or {}
    if not isinstance(raw, dict):
        return []
    out = []
    for alias, req in sorted(raw.items()):
        out.append(
            {
                "Name": alias,
                "Type": str(ci(req, "Type") or ""),
                "Source": str(ci(req, "Source") or ""),
                "ReadOnly": bool(ci(req, "ReadOnly") or ci(req, "read_only")),
                "AccessMode": str(ci(req, "AccessMode") or ci(req, "access_mode") or ""),
                "AttachmentMode": str(
                    ci(req, "AttachmentMode") or ci(req, "attachment_mode") or ""
                ),
            }
        )
    return out


def has_host_volumes(node: Node, requests: list[dict[str, Any]]) -> bool:
    """``HostVolumeChecker.hasVolumes`` for static host volumes (the twin's only kind)."""
    for req in requests:
        if req["Type"] != "host":
            continue
        cfg = node.host_volumes.get(req["Source"])
        if cfg is None:
            return False
        if not req["ReadOnly"] and cfg["ReadOnly"]:
            return False
    return True


class CSIVolumes:
    """The ``csi_volumes`` table and the denormalisation Nomad applies when reading it."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.volumes: dict[tuple[str, str], dict[str, Any]] = {}

    def plugin_nodes(self, plugin_id: str) -> int:
        return sum(1 for n in self.nodes if plugin_id in n.config.csi_node_plugins)

    def denormalize(self, vol: dict[str, Any], allocs: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """``csiVolumeDenormalizePluginsTxn`` + the claims of live allocations."""
        healthy = self.plugin_nodes(vol["PluginID"])
        readers: dict[str, Any] = {}
        writers: dict[str, Any] = {}
        modes = (vol["AccessMode"], vol["AttachmentMode"])
        for alloc in allocs:
            if alloc["Namespace"] != vol["Namespace"] or client_terminal(alloc):
                continue
            if alloc["DesiredStatus"] != "run":
                continue
            group = next(
                (g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"]), None
            )
            for req in group_volumes(group or {}):
                if req["Type"] == "csi" and req["Source"] == vol["ID"]:
                    (readers if req["ReadOnly"] else writers)[alloc["ID"]] = None
                    if not modes[0]:
                        # ClaimRead/ClaimWrite: an unclaimed volume takes the claim's modes.
                        modes = (req["AccessMode"], req["AttachmentMode"])
        return {
            **vol,
            "AccessMode": modes[0],
            "AttachmentMode": modes[1],
            "ReadAllocs": readers,
            "WriteAllocs": writers,
            "Schedulable": healthy > 0,
            "ControllerRequired": False,
            "ControllersHealthy": 0,
            "ControllersExpected": 0,
            "NodesHealthy": healthy,
            "NodesExpected": healthy,
        }

    def stub(self, vol: dict[str, Any]) -> dict[str, Any]:
        """``CSIVolume.Stub`` (``CSIVolListStub``)."""
        return {
            "ID": vol["ID"],
            "Namespace": vol["Namespace"],
            "Name": vol["Name"],
            "ExternalID": vol["ExternalID"],
            "Topologies": vol["Topologies"],
            "AccessMode": vol["AccessMode"],
            "AttachmentMode": vol["AttachmentMode"],
            "CurrentReaders": len(vol["ReadAllocs"]),
            "CurrentWriters": len(vol["WriteAllocs"]),
            "Schedulable": vol["Schedulable"],
            "PluginID": vol["PluginID"],
            "Provider": vol["Provider"],
            "ControllerRequired": vol["ControllerRequired"],
            "ControllersHealthy": vol["ControllersHealthy"],
            "ControllersExpected": vol["ControllersExpected"],
            "NodesHealthy": vol["NodesHealthy"],
            "NodesExpected": vol["NodesExpected"],
            "ResourceExhausted": None,
            "CreateIndex": vol["CreateIndex"],
            "ModifyIndex": vol["ModifyIndex"],
            "CreateTime": vol["CreateTime"],
            "ModifyTime": vol["ModifyTime"],
        }


def validate(vol: dict[str, Any]) -> list[str]:
    """``CSIVolume.Validate`` (``nomad/structs/csi.go``): the texts, in its order."""
    errs = []
    if not vol["ID"]:
        errs.append("missing volume id")
    if not vol["PluginID"]:
        errs.append("missing plugin id")
    if not vol["Namespace"]:
        errs.append("missing namespace")
    if vol["SnapshotID"] and vol["CloneID"]:
        errs.append("only one of snapshot_id and clone_id is allowed")
    if not vol["RequestedCapabilities"]:
        errs.append("must include at least one capability block")
    return errs


def write_schedulable(vol: dict[str, Any]) -> bool:
    """``CSIVolume.WriteSchedulable``: the current access mode, or (never claimed) any
    requested capability, must be a writer mode."""
    if not vol["Schedulable"]:
        return False
    if vol["AccessMode"] in WRITER_MODES:
        return True
    if vol["AccessMode"] == "":
        return any(c.get("AccessMode") in WRITER_MODES for c in vol["RequestedCapabilities"])
    return False


def has_free_write_claims(vol: dict[str, Any]) -> bool:
    """``CSIVolume.HasFreeWriteClaims``."""
    mode = vol["AccessMode"]
    if mode in ("single-node-writer", "multi-node-single-writer"):
        return not vol["WriteAllocs"]
    return mode in ("multi-node-multi-writer", "")


def csi_feasible(
    node: Node,
    namespace: str,
    job_id: str,
    requests: list[dict[str, Any]],
    lookup: Any,
    alloc_of: Any,
) -> str:
    """``CSIVolumeChecker.isFeasible``: "" when feasible, else the filter text.
    ``lookup(ns, id)`` gives a denormalised volume or None; ``alloc_of(id)`` an allocation.
    The per-node MaxVolumes count and topologies never bite: the twin's plugins report
    unlimited volumes and no topology."""
    for req in requests:
        if req["Type"] != "csi":
            continue
        vol = lookup(namespace, req["Source"])
        if vol is None:
            return FILTER_CSI_NOT_FOUND.format(source=req["Source"])
        if vol["PluginID"] not in node.config.csi_node_plugins:
            return FILTER_CSI_PLUGIN.format(plugin=vol["PluginID"], node=node.id)
        if req["ReadOnly"]:
            if not vol["Schedulable"]:  # ReadSchedulable: no ResourceExhausted in the twin
                return FILTER_CSI_NO_READ.format(id=vol["ID"])
            continue
        if not write_schedulable(vol):
            return FILTER_CSI_NO_WRITE.format(id=vol["ID"])
        if not has_free_write_claims(vol):
            for aid in vol["WriteAllocs"]:
                alloc = alloc_of(aid)
                if alloc is None or alloc["Namespace"] != namespace or alloc["JobID"] != job_id:
                    return FILTER_CSI_IN_USE.format(id=vol["ID"])
    return ""


def new_metric(nodes: list[Node], node_pool: str) -> dict[str, Any]:
    """A fresh ``structs.AllocMetric`` as ``computePlacements`` primes it (NodesAvailable by
    datacenter, NodesInPool, NodePool), in the struct's field order."""
    by_dc: dict[str, int] = {}
    for n in nodes:
        by_dc[n.datacenter] = by_dc.get(n.datacenter, 0) + 1
    return {
        "NodesEvaluated": 0,
        "NodesFiltered": 0,
        "NodesInPool": len(nodes),
        "NodePool": node_pool,
        "NodesAvailable": by_dc,
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


def filter_node(metric: dict[str, Any], constraint: str) -> None:
    """``AllocMetric.FilterNode`` for a node without a NodeClass (the twin's nodes)."""
    metric["NodesFiltered"] += 1
    counts = metric["ConstraintFiltered"] or {}
    counts[constraint] = counts.get(constraint, 0) + 1
    metric["ConstraintFiltered"] = counts
