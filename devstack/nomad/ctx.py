"""What every HTTP handler needs: the store, scheduler, clients, ACL and fault knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devstack.nomad.acl import Authz, PolicyError, parse_rules
from devstack.nomad.errors import ApiError
from devstack.nomad.httpbase import token

if TYPE_CHECKING:
    from devstack.nomad.client import Client
    from devstack.nomad.faults import NomadFaults
    from devstack.nomad.nodes import Node
    from devstack.nomad.scheduler import Scheduler
    from devstack.nomad.state import NomadState
    from devstack.nomad.variables import VariableStore

VERSION = "1.10.5"
CTX_KEY: web.AppKey[TwinCtx] = web.AppKey("nomad_twin_ctx")


@dataclass
class TwinCtx:
    state: NomadState
    sched: Scheduler
    client: Client
    nodes: list[Node]
    faults: NomadFaults
    variables: VariableStore
    acl: bool = False
    heartbeat: float = 30.0
    streams: set[Any] = field(default_factory=set)

    def authz(self, request: web.Request) -> Authz:
        if not self.acl:
            return Authz(None)
        secret = token(request)
        if not secret:
            anon = self.state.acl_policies.get("anonymous")
            return Authz([_rules(anon)] if anon else [])
        tok = self.state.acl_tokens.get(secret)
        if tok is None:
            raise ApiError(403, "Permission denied")
        if tok["Type"] == "management":
            return Authz(None)
        rules = []
        for name in tok["Policies"] or []:
            policy = self.state.acl_policies.get(name)
            if policy is not None:
                rules.append(_rules(policy))
        return Authz(rules)


def _rules(policy: dict[str, Any]) -> Any:
    try:
        return parse_rules(policy["Rules"])
    except PolicyError:
        return parse_rules("")


def ctx_of(request: web.Request) -> TwinCtx:
    return request.app[CTX_KEY]


def require(ok: bool) -> None:
    if not ok:
        raise ApiError(403, "Permission denied")
