"""The records the Consul twin keeps: one node, its services, their checks.

A single `consul agent -dev` is both the local agent and the whole catalog, so the twin keeps a
single copy of each service and check and renders the agent, catalog and health views from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONSUL_VERSION = "1.16.2"
STATUSES = ("passing", "warning", "critical")


@dataclass
class Node:
    """The twin's only node (the dev agent itself)."""

    id: str
    name: str
    address: str
    datacenter: str
    create_index: int
    modify_index: int


@dataclass
class Service:
    """An agent-registered service (structs.NodeService)."""

    id: str
    name: str
    tags: list[str]
    address: str
    port: int
    meta: dict[str, str] | None
    tagged_addresses: dict[str, dict[str, Any]]
    weights: dict[str, int]
    enable_tag_override: bool = False
    kind: str = ""
    socket_path: str = ""
    create_index: int = 0
    modify_index: int = 0
    agent_local: bool = True  # False for the "consul" server service (catalog only)


@dataclass
class Check:
    """A health check (structs.HealthCheck) plus the definition it runs from (CheckType)."""

    check_id: str
    name: str
    status: str
    service_id: str = ""
    service_name: str = ""
    service_tags: list[str] = field(default_factory=list)
    type: str = ""
    notes: str = ""
    output: str = ""
    interval: str = ""
    timeout: str = ""
    definition: dict[str, Any] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0
    agent_local: bool = True  # False for serfHealth (a node check the agent does not own)


def check_type(defn: dict[str, Any]) -> str:
    """CheckType.Type(): which kind of check a definition is, in Consul's order of precedence."""
    interval = int(defn.get("Interval", 0)) > 0
    script = bool(defn.get("ScriptArgs")) and interval
    if defn.get("GRPC") and interval:
        return "grpc"
    if defn.get("HTTP") and interval:
        return "http"
    if int(defn.get("TTL", 0)) > 0:
        return "ttl"
    if defn.get("TCP") and interval:
        return "tcp"
    if defn.get("UDP") and interval:
        return "udp"
    if defn.get("AliasNode") or defn.get("AliasService"):
        return "alias"
    if script and defn.get("DockerContainerID"):
        return "docker"
    if script:
        return "script"
    if defn.get("H2PING") and interval:
        return "h2ping"
    if defn.get("OSService") and interval:
        return "os_service"
    return ""
