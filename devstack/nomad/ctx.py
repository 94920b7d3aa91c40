"""What every HTTP handler needs: the store, scheduler, clients, ACL and fault knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devstack.nomad.acl import Authz, PolicyError, parse_rules
from devstack.nomad.errors import ApiError
from devstack.nomad.httpbase import token
from devstack.nomad.identity import Claims, WorkloadIdentities, attached, implicit_rules, live_group

if TYPE_CHECKING:
    from devstack.nomad.children import ChildJobs
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
    identities: WorkloadIdentities = field(default_factory=WorkloadIdentities)
    children: ChildJobs | None = None  # periodic launches and dispatches (children.py)

    def authz(self, request: web.Request) -> Authz:
        secret = token(request)
        claims = self.identities.verify(secret) if secret.count(".") == 2 else None
        if claims is not None:
            return self._workload(claims)
        if not self.acl:
            return Authz(None)
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

    def _workload(self, claims: Claims) -> Authz:
        """A task's identity: its implicit Variables access plus policies attached to it.

        Applied even with ACLs off (Nomad then allows everything), so a template that reads
        outside its own nomad/jobs paths fails here as it would on a cluster with ACLs."""
        group = live_group(self.state.allocs, claims)
        if group is None:
            raise ApiError(403, "Permission denied")
        rules = [implicit_rules(claims, group)]
        if self.acl:
            for policy in self.state.acl_policies.values():
                if attached(policy, claims, group):
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
