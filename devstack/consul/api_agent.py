"""`/v1/agent/*`: what Nomad (and py-consul) use to register services and drive TTL checks.

Agent endpoints are local to the agent: no X-Consul-Index, zero indexes on checks, writes
answer 200 with an empty body, and an unknown service ID on deregister is a 404 with Consul's
sentence (py-consul reports it as False, not an exception).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from devstack.consul import decode, render
from devstack.consul.model import CONSUL_VERSION
from devstack.consul.runner import CheckRunner
from devstack.consul.validate import ApiError, build_check, build_service, check_error
from devstack.consul.wire import empty_ok, json_ok, methods, state_of

RUNNER_KEY: web.AppKey[CheckRunner] = web.AppKey("consul_runner", CheckRunner)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "Request decode failed: EOF")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ApiError(400, f"Request decode failed: {e.msg}") from e


@methods("PUT")
async def register_service(request: web.Request) -> web.StreamResponse:
    try:
        defn = decode.decode_service(await _body(request))
    except decode.DecodeError as e:
        raise ApiError(400, f"Request decode failed: {e}") from e
    svc, checks = build_service(defn)
    replace = request.query.get("replace-existing-checks", "").lower() in ("1", "true")
    state_of(request).register(svc, checks, replace_existing_checks=replace)
    return empty_ok()


@methods("PUT")
async def deregister_service(request: web.Request) -> web.StreamResponse:
    state_of(request).deregister(request.match_info["id"])
    return empty_ok()


@methods("GET")
async def services(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    dc = state.node.datacenter
    out = {s.id: render.agent_service(s, dc) for s in state.services.values() if s.agent_local}
    return json_ok(request, out)


@methods("GET")
async def service(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    sid = request.match_info["id"]
    svc = state.services.get(sid)
    if svc is None or not svc.agent_local:
        raise ApiError(404, f"unknown service ID: {sid}")
    out = render.agent_service(svc, state.node.datacenter)
    content_hash = f"{svc.modify_index:016x}"
    out["ContentHash"] = content_hash
    return json_ok(request, out, {"X-Consul-Contenthash": content_hash})


@methods("GET")
async def checks(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    out = {
        c.check_id: render.health_check(c, state.node, agent=True)
        for c in state.checks.values()
        if c.agent_local
    }
    return json_ok(request, out)


@methods("PUT")
async def register_check(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    try:
        defn = decode.decode_check_definition(await _body(request))
    except decode.DecodeError as e:
        raise ApiError(400, f"Request decode failed: {e}") from e
    if not defn.get("Name"):
        raise ApiError(400, "Missing check name")
    svc = None
    if defn.get("ServiceID"):
        svc = state.services.get(defn["ServiceID"])
        if svc is None or not svc.agent_local:
            raise ApiError(400, f'ServiceID "{defn["ServiceID"]}" does not exist')
    if (err := check_error(defn)) is not None:
        raise ApiError(400, f"Invalid check: {err}")
    state.add_check(build_check(defn, defn.get("ID") or defn["Name"], svc))
    return empty_ok()


@methods("PUT")
async def deregister_check(request: web.Request) -> web.StreamResponse:
    state_of(request).remove_check(request.match_info["id"])
    return empty_ok()


def _ttl_target(request: web.Request) -> str:
    cid = request.match_info["id"]
    check = state_of(request).checks.get(cid)
    if check is None or not check.agent_local:
        raise ApiError(
            404,
            f'Unknown check ID "{cid}". Ensure that the check ID is passed, not the check name.',
        )
    if check.type != "ttl":
        raise ApiError(500, f'CheckID "{cid}" does not have associated TTL')
    return cid


@methods("PUT")
async def ttl_status(request: web.Request) -> web.StreamResponse:
    status = {"pass": "passing", "warn": "warning", "fail": "critical"}[request.match_info["verb"]]
    cid = _ttl_target(request)
    request.app[RUNNER_KEY].ttl_update(cid, status, request.query.get("note", ""))
    return empty_ok()


@methods("PUT")
async def ttl_update(request: web.Request) -> web.StreamResponse:
    cid = _ttl_target(request)
    body = await _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request decode failed: json: cannot unmarshal into checkUpdate")
    status = str(body.get("Status", ""))
    if status not in ("passing", "warning", "critical"):
        raise ApiError(400, f"Invalid check status: '{status}'")
    request.app[RUNNER_KEY].ttl_update(cid, status, str(body.get("Output", "")))
    return empty_ok()


@methods("GET")
async def self_info(request: web.Request) -> web.StreamResponse:
    node = state_of(request).node
    config = {
        "Datacenter": node.datacenter,
        "PrimaryDatacenter": node.datacenter,
        "NodeName": node.name,
        "NodeID": node.id,
        "Revision": "devstack",
        "Server": True,
        "Version": CONSUL_VERSION,
        "BuildDate": "2023-09-26T14:41:00Z",
    }
    member = {
        "Name": node.name,
        "Addr": node.address,
        "Port": 8301,
        "Tags": {"dc": node.datacenter, "role": "consul", "build": CONSUL_VERSION, "id": node.id},
        "Status": 1,
    }
    meta = {"consul-network-segment": "", "consul-version": CONSUL_VERSION}
    return json_ok(request, {"Config": config, "Member": member, "Meta": meta, "Stats": {}})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_route("*", "/v1/agent/service/register", register_service)
    r.add_route("*", "/v1/agent/service/deregister/{id:.+}", deregister_service)
    r.add_route("*", "/v1/agent/services", services)
    r.add_route("*", "/v1/agent/service/{id:.+}", service)
    r.add_route("*", "/v1/agent/checks", checks)
    r.add_route("*", "/v1/agent/check/register", register_check)
    r.add_route("*", "/v1/agent/check/deregister/{id:.+}", deregister_check)
    r.add_route("*", "/v1/agent/check/{verb:pass|warn|fail}/{id:.+}", ttl_status)
    r.add_route("*", "/v1/agent/check/update/{id:.+}", ttl_update)
    r.add_route("*", "/v1/agent/self", self_info)
