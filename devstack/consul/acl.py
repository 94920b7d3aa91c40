"""Consul ACLs for the twin: tokens with service/node rules, enforced as Consul enforces them.

Reads are **filtered**, never refused: ``agent/consul/acl.go`` ``aclFilter``
(``filterCheckServiceNodes``, ``filterServiceNodes``, ``filterNodes``,
``filterHealthChecks``, ``filterServices``) drops every entry whose node lacks
``node:read`` or whose service lacks ``service:read`` and answers ``200`` with what is left
(``[]`` when nothing is). The response then carries ``X-Consul-Results-Filtered-By-ACLs:
true`` — only for a token that is not anonymous, so the anonymous token learns nothing
(``agent/http.go`` ``setResultsFilteredByACLs``). Writes need ``service:write`` and are
refused with 403 and ``acl.PermissionDeniedError``'s text (``Permission denied: token
with AccessorID '<id>' lacks permission 'service:write' on "web"``). An unknown token is
403 ``ACL not found``. A dev agent runs with ACLs off; ``start_consul_twin(acl=...)``
turns them on with ``default_policy`` deny.

Rules are given as ``{"service_prefix": {"": "read"}, "node_prefix": {"": "read"},
"service": {"web": "write"}}``: exact rules win over prefix rules, the longest prefix
wins, ``write`` implies ``read``, ``deny`` denies (Consul's radix-tree lookup).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"  # acl.AnonymousTokenID
FILTERED_HEADER = "X-Consul-Results-Filtered-By-ACLs"
LEVELS = {"deny": 0, "read": 1, "write": 2}
Rules = dict[str, dict[str, str]]


@dataclass
class Token:
    accessor_id: str
    rules: Rules = field(default_factory=dict)
    management: bool = False

    def allowed(self, resource: str, name: str, level: str) -> bool:
        if self.management:
            return True
        exact = self.rules.get(resource, {})
        if name in exact:
            return LEVELS[exact[name]] >= LEVELS[level]
        prefixes = self.rules.get(f"{resource}_prefix", {})
        best = max((p for p in prefixes if name.startswith(p)), key=len, default=None)
        return best is not None and LEVELS[prefixes[best]] >= LEVELS[level]


@dataclass
class ConsulAcl:
    """``tokens`` maps SecretID -> Token; ``anonymous`` applies to requests without one."""

    tokens: dict[str, Token] = field(default_factory=dict)
    anonymous: Token = field(default_factory=lambda: Token(ANONYMOUS_ACCESSOR))

    def resolve(self, request: web.Request) -> Token:
        secret = request.headers.get("X-Consul-Token") or request.query.get("token", "")
        if not secret:
            auth = request.headers.get("Authorization", "")
            secret = auth[7:] if auth.startswith("Bearer ") else ""
        if not secret:
            return self.anonymous
        token = self.tokens.get(secret)
        if token is None:
            raise web.HTTPForbidden(text="ACL not found", content_type="text/plain")
        return token


def permission_denied(token: Token, resource: str, level: str, name: str) -> str:
    """``acl.PermissionDeniedError.Error`` for a named resource."""
    who = (
        "anonymous token"
        if token.accessor_id == ANONYMOUS_ACCESSOR
        else f"token with AccessorID '{token.accessor_id}'"
    )
    out = f"Permission denied: {who} lacks permission '{resource}:{level}' on \"{name}\""
    if token.accessor_id == ANONYMOUS_ACCESSOR:
        out += ". The anonymous token is used implicitly when a request does not specify a token."
    return out


def _keep(token: Token, entry: dict[str, Any]) -> bool:
    node = entry.get("Node")
    node_name = node.get("Node") if isinstance(node, dict) else node
    if isinstance(node_name, str) and not token.allowed("node", node_name, "read"):
        return False
    svc = entry.get("Service")
    svc_name = svc.get("Service") if isinstance(svc, dict) else entry.get("ServiceName")
    named = isinstance(svc_name, str) and bool(svc_name)
    return not named or token.allowed("service", str(svc_name), "read")


def filter_body(token: Token, path: str, body: Any) -> tuple[Any, bool]:
    """Apply aclFilter to one catalog/health/agent read; returns (body, filtered)."""
    if path == "/v1/catalog/services" and isinstance(body, dict):
        kept = {k: v for k, v in body.items() if token.allowed("service", k, "read")}
        return kept, len(kept) != len(body)
    if path == "/v1/agent/services" and isinstance(body, dict):
        kept = {
            k: v for k, v in body.items() if token.allowed("service", v.get("Service", ""), "read")
        }
        return kept, len(kept) != len(body)
    if path == "/v1/agent/checks" and isinstance(body, dict):
        kept = {k: v for k, v in body.items() if _keep(token, v)}
        return kept, len(kept) != len(body)
    if isinstance(body, list):
        kept_list = [e for e in body if not isinstance(e, dict) or _keep(token, e)]
        return kept_list, len(kept_list) != len(body)
    return body, False


READ_PREFIXES = ("/v1/catalog/", "/v1/health/", "/v1/agent/services", "/v1/agent/checks")
WRITE_PATHS = ("/v1/agent/service/register", "/v1/agent/service/deregister/")


def write_target(request: web.Request, raw: bytes) -> str | None:
    """The service a write touches (register: body Name; deregister: the ID's service)."""
    if request.path == "/v1/agent/service/register":
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return None
        if isinstance(body, dict):
            for key, value in body.items():
                if key.lower() == "name" and isinstance(value, str):
                    return value
    return None
