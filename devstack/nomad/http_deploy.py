"""HTTP: deployment writes (fail, promote, pause, allocation-health, unblock), as
``command/agent/deployment_endpoint.go``.

Both answer a ``DeploymentUpdateResponse`` (EvalID, EvalCreateIndex, DeploymentModifyIndex,
RevertedJobVersion, Index) with ``X-Nomad-Index``. RPC errors are 500 with the server's text
(``nomad/deployment_endpoint.go`` ``Fail`` / ``Promote``, ``structs/errors.go``); the HTTP
layer's own checks (method, body, ID) are 405 / 400.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from devstack.nomad.ctx import ctx_of, require
from devstack.nomad.httpbase import reply, text
from devstack.nomad.scheduler import FAILED_BY_USER

# structs.go Deployment.Active
ACTIVE = ("running", "paused", "pending", "blocked", "unblocking")


def _deployment(request: web.Request) -> dict[str, Any] | web.Response:
    c = ctx_of(request)
    dep = c.state.deployments.get(request.match_info["id"])
    if dep is None:
        return text(500, "deployment not found")
    require(c.authz(request).allow_ns(dep["Namespace"], "submit-job"))
    return dep


async def fail(request: web.Request) -> web.Response:
    """``deploymentFail`` -> ``Deployment.Fail`` -> ``deploymentWatcher.FailDeployment``."""
    if request.method not in ("PUT", "POST"):
        return text(405, "Invalid method")
    dep = _deployment(request)
    if isinstance(dep, web.Response):
        return dep
    if dep["Status"] not in ACTIVE:
        return text(500, "can't fail terminal deployment")
    rollback = any(g["AutoRevert"] for g in dep["TaskGroups"].values())
    out = ctx_of(request).sched.fail_deployment(dep["ID"], FAILED_BY_USER, rollback)
    return reply(out, out["Index"], query=False)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    """The HTTP layer's checks shared by the write handlers with a body: method, decode,
    ``DeploymentID must be specified`` and ``Deployment ID does not match`` (all 4xx)."""
    if request.method not in ("PUT", "POST"):
        return text(405, "Invalid method")
    try:
        raw = await request.read()
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        return text(400, str(exc))
    if not isinstance(body, dict):
        return text(400, "Request body is empty")
    fields = {k.lower(): v for k, v in body.items()}
    dep_id = fields.get("deploymentid") or ""
    if not dep_id:
        return text(400, "DeploymentID must be specified")
    if dep_id != request.match_info["id"]:
        return text(400, "Deployment ID does not match")
    return fields


async def promote(request: web.Request) -> web.Response:
    """``deploymentPromote`` -> ``Deployment.Promote`` -> ``UpdateDeploymentPromotion``."""
    fields = await _body(request)
    if isinstance(fields, web.Response):
        return fields
    dep = _deployment(request)
    if isinstance(dep, web.Response):
        return dep
    if dep["Status"] not in ACTIVE:
        return text(500, "can't promote terminal deployment")
    groups = fields.get("groups") or []
    out = ctx_of(request).sched.promote(dep["ID"], bool(fields.get("all")), list(groups))
    if isinstance(out, str):
        return text(500, out)
    return reply(out, out["Index"], query=False)


async def pause(request: web.Request) -> web.Response:
    """``deploymentPause`` -> ``Deployment.Pause`` -> ``PauseDeployment``: ``Pause: true``
    pauses (``Deployment is paused``, no eval), ``false`` resumes (``Deployment is running``
    and a ``deployment-watcher`` eval). A terminal deployment is ``can't pause/resume
    terminal deployment``."""
    fields = await _body(request)
    if isinstance(fields, web.Response):
        return fields
    dep = _deployment(request)
    if isinstance(dep, web.Response):
        return dep
    want = bool(fields.get("pause"))
    if dep["Status"] not in ACTIVE:
        return text(500, f"can't {'pause' if want else 'resume'} terminal deployment")
    out = ctx_of(request).sched.pause(dep["ID"], want)
    return reply(out, out["Index"], query=False)


async def alloc_health(request: web.Request) -> web.Response:
    """``deploymentSetAllocHealth`` -> ``Deployment.SetAllocHealth`` ->
    ``deploymentWatcher.SetAllocHealth`` / ``UpdateDeploymentAllocHealth`` (how
    ``health_check = "manual"`` gets its health)."""
    fields = await _body(request)
    if isinstance(fields, web.Response):
        return fields
    healthy = list(fields.get("healthyallocationids") or [])
    unhealthy = list(fields.get("unhealthyallocationids") or [])
    if not healthy and not unhealthy:
        return text(500, "must specify at least one healthy/unhealthy allocation ID")
    dep = _deployment(request)
    if isinstance(dep, web.Response):
        return dep
    if dep["Status"] not in ACTIVE:
        return text(500, "can't set health of allocations for a terminal deployment")
    out = ctx_of(request).sched.set_alloc_health(dep["ID"], healthy, unhealthy)
    if isinstance(out, str):
        return text(500, out)
    return reply(out, out["Index"], query=False)


async def unblock(request: web.Request) -> web.Response:
    """``deploymentUnblock`` -> ``Deployment.Unblock``: multiregion only. OSS Nomad's
    ``multiregion_ce.go`` ``UnblockDeployment`` does nothing and answers a zero
    ``DeploymentUpdateResponse`` for an active deployment; a terminal one is refused."""
    fields = await _body(request)
    if isinstance(fields, web.Response):
        return fields
    dep = _deployment(request)
    if isinstance(dep, web.Response):
        return dep
    if dep["Status"] not in ACTIVE:
        return text(500, "can't unblock terminal deployment")
    out = {
        "EvalID": "",
        "EvalCreateIndex": 0,
        "DeploymentModifyIndex": 0,
        "RevertedJobVersion": None,
        "Index": 0,
    }
    return reply(out, 0, query=False)


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/deployment/fail/{id}", fail)
    app.router.add_route("*", "/v1/deployment/promote/{id}", promote)
    app.router.add_route("*", "/v1/deployment/pause/{id}", pause)
    app.router.add_route("*", "/v1/deployment/allocation-health/{id}", alloc_health)
    app.router.add_route("*", "/v1/deployment/unblock/{id}", unblock)
