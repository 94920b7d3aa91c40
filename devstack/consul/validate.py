"""Turn a decoded service definition into records, with Consul's validation and defaults.

This is where the agent's rules live: the 400 texts a real agent answers with, the default
service ID (the name), check IDs `service:<id>` / `service:<id>:<n>`, check names
`Service '<name>' check`, checks starting critical, and the lan_ipv4/wan_ipv4 tagged addresses
added when the service address is an IP.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from devstack import godur
from devstack.consul.model import STATUSES, Check, Service, check_type

_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
_META_MAX_PAIRS = 64
_META_KEY_MAX = 128
_META_VALUE_MAX = 512


class ApiError(Exception):
    """An HTTP error with Consul's plain-text body."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _meta_error(meta: dict[str, str]) -> str | None:
    if len(meta) > _META_MAX_PAIRS:
        return f"Node metadata cannot contain more than {_META_MAX_PAIRS} key/value pairs"
    for key, value in meta.items():
        if key == "":
            return "Key cannot be blank"
        if not _META_KEY.match(key):
            return "Key contains invalid characters"
        if len(key) > _META_KEY_MAX:
            return f"Key is too long (limit: {_META_KEY_MAX} characters)"
        if key.startswith("consul-"):
            return "Key prefix 'consul-' is reserved for internal use"
        if len(value) > _META_VALUE_MAX:
            return f"Value is too long (limit: {_META_VALUE_MAX} characters)"
    return None


def check_error(defn: dict[str, Any]) -> str | None:
    """CheckType.Validate()."""
    interval = int(defn.get("Interval", 0))
    ttl = int(defn.get("TTL", 0))
    script = bool(defn.get("ScriptArgs")) and interval > 0
    interval_kind = script or any(
        defn.get(k) for k in ("HTTP", "TCP", "UDP", "GRPC", "H2PING", "OSService")
    )
    alias = bool(defn.get("AliasNode") or defn.get("AliasService"))
    if interval > 0 and ttl > 0:
        return "Interval and TTL cannot both be specified"
    if interval_kind and interval <= 0:
        return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
    if alias and ttl > 0:
        return "TTL must be not be set for Alias checks"
    if not interval_kind and not alias and ttl <= 0:
        return "TTL must be > 0 for TTL checks"
    if int(defn.get("OutputMaxSize", 0)) < 0:
        return "MaxOutputMaxSize must be positive"
    if int(defn.get("FailuresBeforeWarning", 0)) > int(defn.get("FailuresBeforeCritical", 0)):
        return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
    return None


def _tagged_defaults(address: str, port: int, given: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = dict(given)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return out
    suffix = "ipv4" if ip.version == 4 else "ipv6"
    for scope in ("lan", "wan"):
        out.setdefault(f"{scope}_{suffix}", {"Address": address, "Port": port})
    return out


def build_service(defn: dict[str, Any]) -> tuple[Service, list[Check]]:
    """Records for PUT /v1/agent/service/register; raises ApiError(400, <Consul's text>)."""
    name = defn.get("Name", "")
    if not name:
        raise ApiError(400, "Missing service name")
    address = defn.get("Address", "")
    if address in ("0.0.0.0", "::", "[::]"):
        raise ApiError(400, "Invalid service address")
    meta = defn.get("Meta")
    if meta is not None and (err := _meta_error(meta)):
        raise ApiError(400, f"Invalid Service Meta: {err}")
    weights = defn.get("Weights")
    if weights is None:
        weights = {"Passing": 1, "Warning": 1}
    elif weights.get("Passing", 0) < 1:
        raise ApiError(400, "Invalid Weights: Passing must be greater than 0")
    elif weights.get("Warning", 0) < 0:
        raise ApiError(400, "Invalid Weights: Warning must be greater or equal than 0")
    port = int(defn.get("Port", 0))
    tags = list(defn.get("Tags") or [])
    svc = Service(
        id=defn.get("ID") or name,
        name=name,
        tags=tags,
        address=address,
        port=port,
        meta=dict(meta) if meta else None,
        tagged_addresses=_tagged_defaults(address, port, defn.get("TaggedAddresses") or {}),
        weights={
            "Passing": int(weights.get("Passing", 0)),
            "Warning": int(weights.get("Warning", 0)),
        },
        enable_tag_override=bool(defn.get("EnableTagOverride", False)),
        kind=defn.get("Kind", ""),
        socket_path=defn.get("SocketPath", ""),
    )
    defs = ([defn["Check"]] if defn.get("Check") else []) + list(defn.get("Checks") or [])
    for c in defs:
        if (err := check_error(c)) is not None:
            raise ApiError(400, f"Invalid check: {err}")
        if c.get("Status") and c["Status"] not in STATUSES:
            raise ApiError(400, "Status for checks must 'passing', 'warning', 'critical'")
    checks = []
    for i, c in enumerate(defs):
        check_id = c.get("CheckID") or f"service:{svc.id}" + (f":{i + 1}" if len(defs) > 1 else "")
        checks.append(build_check(c, check_id, svc))
    return svc, checks


def build_check(defn: dict[str, Any], check_id: str, svc: Service | None) -> Check:
    """A check record in its initial state (critical unless the definition says otherwise)."""
    interval = int(defn.get("Interval", 0))
    timeout = int(defn.get("Timeout", 0))
    return Check(
        check_id=check_id,
        name=defn.get("Name") or (f"Service '{svc.name}' check" if svc else check_id),
        status=defn.get("Status") or "critical",
        service_id=svc.id if svc else "",
        service_name=svc.name if svc else "",
        service_tags=list(svc.tags) if svc else [],
        type=check_type(defn),
        notes=defn.get("Notes", ""),
        interval=godur.format_ns(interval) if interval else "",
        timeout=godur.format_ns(timeout) if timeout else "",
        definition=dict(defn),
    )
