"""The JSON shapes a Consul 1.16 agent answers with, field for field and in Go's order.

Agent, catalog and health endpoints show the same service in three different structs
(api.AgentService, structs.ServiceNode, structs.NodeService) with different empty-value rules:
`Meta` is `{}` from the agent and the catalog but `null` in health results, `Tags` is never
null, agent-local checks carry index 0. The captures in tests/fixtures/consul/ pin these.
"""

from __future__ import annotations

import json
from typing import Any

from devstack.consul.model import CONSUL_VERSION, Check, Node, Service


def go_json(obj: object, *, pretty: bool = False) -> bytes:
    """json.Marshal: compact, no trailing newline, <>& escaped; ?pretty indents and adds one."""
    if pretty:
        text = json.dumps(obj, indent=4, ensure_ascii=False) + "\n"
    else:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode()


def agent_service(svc: Service, datacenter: str) -> dict[str, Any]:
    """api.AgentService (GET /v1/agent/services values)."""
    out: dict[str, Any] = {"Kind": svc.kind} if svc.kind else {}
    out |= {
        "ID": svc.id,
        "Service": svc.name,
        "Tags": list(svc.tags),
        "Meta": dict(svc.meta or {}),
        "Port": svc.port,
        "Address": svc.address,
    }
    if svc.socket_path:
        out["SocketPath"] = svc.socket_path
    if svc.tagged_addresses:
        out["TaggedAddresses"] = svc.tagged_addresses
    out |= {
        "Weights": dict(svc.weights),
        "EnableTagOverride": svc.enable_tag_override,
        "Datacenter": datacenter,
    }
    return out


def health_check(check: Check, node: Node, *, agent: bool = False) -> dict[str, Any]:
    """structs.HealthCheck; agent-local views carry zero indexes."""
    return {
        "Node": node.name,
        "CheckID": check.check_id,
        "Name": check.name,
        "Status": check.status,
        "Notes": check.notes,
        "Output": check.output,
        "ServiceID": check.service_id,
        "ServiceName": check.service_name,
        "ServiceTags": list(check.service_tags),
        "Type": check.type,
        "Interval": check.interval,
        "Timeout": check.timeout,
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": 0 if agent else check.create_index,
        "ModifyIndex": 0 if agent else check.modify_index,
    }


def _node_tagged(node: Node) -> dict[str, str]:
    return {
        "lan": node.address,
        "lan_ipv4": node.address,
        "wan": node.address,
        "wan_ipv4": node.address,
    }


def _node_meta() -> dict[str, str]:
    return {"consul-network-segment": "", "consul-version": CONSUL_VERSION}


def node(node: Node) -> dict[str, Any]:
    """structs.Node as embedded in health results."""
    return {
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": _node_tagged(node),
        "Meta": _node_meta(),
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    }


def _proxy() -> dict[str, Any]:
    return {"Mode": "", "MeshGateway": {}, "Expose": {}}


def node_service(svc: Service) -> dict[str, Any]:
    """structs.NodeService (the `Service` of a health result)."""
    out: dict[str, Any] = {"Kind": svc.kind} if svc.kind else {}
    out |= {"ID": svc.id, "Service": svc.name, "Tags": list(svc.tags), "Address": svc.address}
    if svc.tagged_addresses:
        out["TaggedAddresses"] = svc.tagged_addresses
    out |= {
        "Meta": dict(svc.meta) if svc.meta else None,
        "Port": svc.port,
    }
    if svc.socket_path:
        out["SocketPath"] = svc.socket_path
    out |= {
        "Weights": dict(svc.weights),
        "EnableTagOverride": svc.enable_tag_override,
        "Proxy": _proxy(),
        "Connect": {},
        "PeerName": "",
        "CreateIndex": svc.create_index,
        "ModifyIndex": svc.modify_index,
    }
    return out


def catalog_service(svc: Service, node: Node) -> dict[str, Any]:
    """structs.ServiceNode (GET /v1/catalog/service/:name entries)."""
    out: dict[str, Any] = {
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": _node_tagged(node),
        "NodeMeta": _node_meta(),
        "ServiceKind": svc.kind,
        "ServiceID": svc.id,
        "ServiceName": svc.name,
        "ServiceTags": list(svc.tags),
        "ServiceAddress": svc.address,
    }
    if svc.tagged_addresses:
        out["ServiceTaggedAddresses"] = svc.tagged_addresses
    out |= {
        "ServiceWeights": dict(svc.weights),
        "ServiceMeta": dict(svc.meta or {}),
        "ServicePort": svc.port,
        "ServiceEnableTagOverride": svc.enable_tag_override,
        "ServiceProxy": _proxy(),
        "ServiceConnect": {},
        "CreateIndex": svc.create_index,
        "ModifyIndex": svc.modify_index,
    }
    return out


def catalog_node(node: Node) -> dict[str, Any]:
    """GET /v1/catalog/nodes entries."""
    return {
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": _node_tagged(node),
        "Meta": _node_meta(),
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    }
