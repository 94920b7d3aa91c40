"""`service`, `key` and `keyOrDefault`: consul-template's Consul functions over the HTTP API.

`service "[tag.]name[@dc][|filter]"` returns healthy instances (or the statuses named by the
filter) as HealthService structs sorted by node then ID, as consul-template does.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import requests

from devstack.template.context import Dependency, RenderState
from devstack.template.errors import TemplateError, UnsupportedError
from devstack.template.gofmt import GoStruct

_QUERY = re.compile(
    r"\A(?:(?P<tag>[\w\-.]+)\.)?(?P<name>[\w\-/]+)(?:@(?P<dc>[\w.\-]+))?(?:~(?P<near>[\w.\-]+))?\Z"
)
_HEALTH_ORDER = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}


@dataclass
class HealthService(GoStruct):
    Node: str = ""
    NodeID: str = ""
    Kind: str = ""
    NodeAddress: str = ""
    NodeDatacenter: str = ""
    NodeTaggedAddresses: dict[str, Any] = field(default_factory=dict)
    NodeMeta: dict[str, Any] = field(default_factory=dict)
    ServiceMeta: dict[str, Any] = field(default_factory=dict)
    Address: str = ""
    ServiceTaggedAddresses: dict[str, Any] = field(default_factory=dict)
    ID: str = ""
    Name: str = ""
    Tags: list[str] = field(default_factory=list)
    Checks: list[Any] = field(default_factory=list)
    Status: str = ""
    Port: int = 0
    Weights: dict[str, Any] = field(default_factory=dict)
    Namespace: str = ""
    go_type = "*dependency.HealthService"


def _base(state: RenderState) -> str:
    addr = state.ctx.consul_addr
    if not addr:
        raise TemplateError("no Consul address configured for this render")
    return addr.rstrip("/") if "://" in addr else f"http://{addr.rstrip('/')}"


def _get(state: RenderState, path: str, params: dict[str, str], what: str) -> Any:
    headers = {"X-Consul-Token": state.ctx.consul_token} if state.ctx.consul_token else {}
    try:
        resp = requests.get(f"{_base(state)}{path}", params=params, headers=headers, timeout=10)
    except requests.RequestException as e:
        raise TemplateError(f"{what}: {type(e).__name__}: {e}") from e
    if resp.status_code == 404:
        return None
    if resp.status_code >= 400:
        raise TemplateError(f"{what}: Unexpected response code: {resp.status_code} ({resp.text})")
    return resp.json()


def _refresh(state: RenderState) -> float | None:
    poll = state.ctx.consul_poll
    return state.ctx.clock() + poll if poll else None


def _status(checks: list[dict[str, Any]]) -> str:
    worst = "passing"
    for c in checks:
        s = str(c.get("Status") or "critical")
        if _HEALTH_ORDER.get(s, 2) > _HEALTH_ORDER[worst]:
            worst = s if s in _HEALTH_ORDER else "critical"
    return worst


def service(state: RenderState, query: str, *filters: str) -> list[HealthService]:
    raw, _, filt = query.partition("|")
    if filters:
        filt = ",".join(filters)
    m = _QUERY.match(raw.strip())
    if "?" in raw or not m:
        raise UnsupportedError(f'service "{query}": query form not supported by this renderer')
    if m.group("near"):
        raise UnsupportedError(f'service "{query}": ~near is not supported by this renderer')
    wanted = {s.strip() for s in filt.split(",") if s.strip()} if filt else set()
    params: dict[str, str] = {}
    if not wanted:
        params["passing"] = "1"
    if m.group("tag"):
        params["tag"] = m.group("tag")
    if m.group("dc"):
        params["dc"] = m.group("dc")
    what = f"health.service({raw.strip()}|{filt or 'passing'})"
    entries = _get(state, f"/v1/health/service/{m.group('name')}", params, what) or []
    out: list[HealthService] = []
    for e in entries:
        node, svc = e.get("Node") or {}, e.get("Service") or {}
        checks = list(e.get("Checks") or [])
        status = _status(checks)
        if wanted and "any" not in wanted and status not in wanted:
            continue
        out.append(
            HealthService(
                Node=str(node.get("Node") or ""),
                NodeID=str(node.get("ID") or ""),
                Kind=str(svc.get("Kind") or ""),
                NodeAddress=str(node.get("Address") or ""),
                NodeDatacenter=str(node.get("Datacenter") or ""),
                NodeTaggedAddresses=dict(node.get("TaggedAddresses") or {}),
                NodeMeta=dict(node.get("Meta") or {}),
                ServiceMeta=dict(svc.get("Meta") or {}),
                Address=str(svc.get("Address") or node.get("Address") or ""),
                ServiceTaggedAddresses=dict(svc.get("TaggedAddresses") or {}),
                ID=str(svc.get("ID") or ""),
                Name=str(svc.get("Service") or ""),
                Tags=list(svc.get("Tags") or []),
                Checks=checks,
                Status=status,
                Port=int(svc.get("Port") or 0),
                Weights=dict(svc.get("Weights") or {}),
                Namespace=str(svc.get("Namespace") or ""),
            )
        )
    out.sort(key=lambda s: (s.Node, s.ID))
    state.deps.append(Dependency("consul.service", what, _refresh(state)))
    return out


def _kv(state: RenderState, path: str) -> str | None:
    what = f"kv.block({path})"
    got = _get(state, f"/v1/kv/{path.strip().lstrip('/')}", {}, what)
    state.deps.append(Dependency("consul.kv", what, _refresh(state)))
    if not got:
        return None
    value = got[0].get("Value")
    return base64.b64decode(value).decode() if value else ""


def key(state: RenderState, path: str) -> str:
    value = _kv(state, path)
    if value is None:
        raise TemplateError(
            f"kv.block({path}): key not found (consul-template would wait for it to exist)"
        )
    return value


def key_or_default(state: RenderState, path: str, default: str) -> str:
    value = _kv(state, path)
    return default if value is None else value
