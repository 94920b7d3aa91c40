"""HTTP: ``/v1/node/:id``, ``/v1/volumes?type=csi`` and ``/v1/volume/csi/:id`` (read, register).

Routing and status codes from nomad v1.10.5 ``command/agent/http.go``,
``command/agent/volumes_endpoint.go`` ``ListVolumesRequest`` (no ``type`` -> ``[]``, an
unknown type -> 404) and ``command/agent/csi_endpoint.go``; the RPC checks and texts from
``nomad/csi_endpoint.go`` ``CSIVolume.List`` / ``Get`` / ``Register`` (RPC errors are 500,
ACL refusals 403 ``Permission denied``).
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from devstack.nomad.codec import now_ns
from devstack.nomad.ctx import ctx_of, require
from devstack.nomad.decode import DecodeError, parse_body
from devstack.nomad.errors import ApiError
from devstack.nomad.httpbase import block, namespace, reply, text
from devstack.nomad.volumes import ci, validate

TABLE = "csi_volumes"


async def node(request: web.Request) -> web.Response:
    """``GET /v1/node/:id``: ``Node.GetNode`` (``node:read``); unknown -> 404 ``node not
    found`` (``command/agent/node_endpoint.go`` ``nodeQuery``)."""
    c = ctx_of(request)
    require(c.authz(request).allow_coarse("node", "read"))
    node_id = request.match_info["id"]
    for n in c.nodes:
        if n.id == node_id:
            return reply(n.full(1), c.state.index)
    return text(404, "node not found")


async def volumes(request: web.Request) -> web.Response:
    if request.method in ("PUT", "POST"):
        return await _register(request)
    if request.method != "GET":
        return text(405, "Invalid method")
    kind = request.query.getall("type", None)
    if kind is None:
        return reply([], query=False)
    if kind[0] != "csi":
        return text(404, "resource not found")
    c = ctx_of(request)
    ns = namespace(request)
    authz = c.authz(request)
    require(
        any(
            authz.allow_ns(ns, cap)
            for cap in ("csi-list-volume", "csi-read-volume", "csi-mount-volume", "list-jobs")
        )
    )
    st = c.state
    index = await block(request, st.notifier, lambda: st.table_index[TABLE] or 1)
    prefix = request.query.get("prefix", "")
    plugin = request.query.get("plugin_id", "")
    out = []
    for (vns, vid), vol in sorted(c.sched.csi.volumes.items()):
        if (ns != "*" and vns != ns) or not vid.startswith(prefix):
            continue
        if plugin and vol["PluginID"] != plugin:
            continue
        full = c.sched.csi_volume(vns, vid)
        assert full is not None
        out.append(c.sched.csi.stub(full))
    return reply(out, index)


async def volume(request: web.Request) -> web.Response:
    if request.method == "PUT":
        return await _register(request)
    if request.method != "GET":
        return text(405, "Invalid method")
    c = ctx_of(request)
    ns = namespace(request)
    authz = c.authz(request)
    require(
        any(authz.allow_ns(ns, cap) for cap in ("csi-read-volume", "csi-mount-volume", "read-job"))
    )
    st = c.state
    index = await block(request, st.notifier, lambda: st.table_index[TABLE] or 1)
    vol = c.sched.csi_volume(ns, request.match_info["id"])
    if vol is None:
        return text(404, "volume not found", index)
    return reply(vol, index)


def _volume(raw: Any, ns: str) -> dict[str, Any]:
    """A submitted ``structs.CSIVolume``: the fields the twin keeps, defaults as Go's zero
    values."""
    caps = []
    for cap in ci(raw, "RequestedCapabilities") or []:
        caps.append(
            {
                "AttachmentMode": str(ci(cap, "AttachmentMode") or ""),
                "AccessMode": str(ci(cap, "AccessMode") or ""),
            }
        )
    return {
        "ID": str(ci(raw, "ID") or ""),
        "Name": str(ci(raw, "Name") or ""),
        "ExternalID": str(ci(raw, "ExternalID") or ""),
        "Namespace": str(ci(raw, "Namespace") or "") or ns,
        "Topologies": None,
        "AccessMode": str(ci(raw, "AccessMode") or ""),
        "AttachmentMode": str(ci(raw, "AttachmentMode") or ""),
        "MountOptions": ci(raw, "MountOptions"),
        "Parameters": ci(raw, "Parameters"),
        "Context": ci(raw, "Context"),
        "Capacity": int(ci(raw, "Capacity") or 0),
        "RequestedCapabilities": caps or None,
        "CloneID": str(ci(raw, "CloneID") or ""),
        "SnapshotID": str(ci(raw, "SnapshotID") or ""),
        "PluginID": str(ci(raw, "PluginID") or ""),
        "Provider": "",
        "ProviderVersion": "",
        "ResourceExhausted": None,
    }


async def _register(request: web.Request) -> web.Response:
    """``CSIVolume.Register``: plugin read, then per volume ``csi-write-volume``,
    ``Validate`` and ``pluginValidateVolume``; all volumes in one raft write. A volume that
    exists keeps its claims and indexes (``reconcileVolume``); the twin replaces the
    mutable fields it keeps."""
    c = ctx_of(request)
    try:
        body = parse_body(await request.read())
    except DecodeError as exc:
        return text(400, str(exc))
    authz = c.authz(request)
    require(authz.allow_plugin_read())
    raw_vols = ci(body, "Volumes") or []
    if not raw_vols:
        raise ApiError(500, "missing volume definition")
    vols = []
    ns = namespace(request)
    for raw in raw_vols:
        vol = _volume(raw, ns)
        require(authz.allow_ns(vol["Namespace"], "csi-write-volume"))
        errs = validate(vol)
        if errs:
            raise ApiError(500, "validation: " + ", ".join(errs))
        if not c.sched.csi.plugin_nodes(vol["PluginID"]):
            raise ApiError(500, f"no CSI plugin named: {vol['PluginID']} could be found")
        vol["Provider"] = vol["PluginID"]
        vol["ProviderVersion"] = "1.0.0"
        vols.append(vol)
    st = c.state
    with st.txn("CSIVolumeRegister") as tx:
        now = now_ns()
        for vol in vols:
            key = (vol["Namespace"], vol["ID"])
            old = c.sched.csi.volumes.get(key)
            vol["CreateIndex"] = old["CreateIndex"] if old else tx.index
            vol["CreateTime"] = old["CreateTime"] if old else now
            vol["ModifyIndex"] = tx.index
            vol["ModifyTime"] = now
            c.sched.csi.volumes[key] = vol
        tx.tables.add(TABLE)
    out = [copy.deepcopy(v) for v in vols]
    # CSIVolumeRegisterResponse: Volumes, Warnings, then the embedded QueryMeta.
    resp = {
        "Volumes": out,
        "Warnings": "",
        "Index": tx.index,
        "LastContact": 0,
        "KnownLeader": True,
        "NextToken": "",
    }
    return reply(resp, tx.index)


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/node/{id}", node, allow_head=False)
    app.router.add_route("*", "/v1/volumes", volumes)
    app.router.add_route("*", "/v1/volume/csi/{id}", volume)
