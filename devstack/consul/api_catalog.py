"""`/v1/catalog/*`, `/v1/health/*`, `/v1/status/*`: the reads the controller verifies with.

These are blocking-capable and carry X-Consul-Index (the index of the resource read, never 0).
An unknown service is `[]` with 200, not 404. Health results include the node's serfHealth
check, so `?passing` hides an instance when the node itself is unhealthy, and warning counts as
not passing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devstack.consul import render
from devstack.consul.model import STATUSES, Service
from devstack.consul.validate import ApiError
from devstack.consul.wire import blocking_read, json_ok, methods, state_of

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _check_dc(request: web.Request) -> None:
    dc = request.query.get("dc")
    if dc and dc != state_of(request).node.datacenter:
        raise ApiError(500, "No path to datacenter")
    if "filter" in request.query:
        raise ApiError(
            400,
            "Failed to create evaluator for expression: ?filter= is not supported by the twin",
        )


def _service_name(request: web.Request) -> str:
    name = request.match_info.get("name", "")
    if not name:
        raise ApiError(400, "Missing service name")
    _check_dc(request)
    return name


def _tagged(request: web.Request, svc: Service) -> bool:
    return all(tag in svc.tags for tag in request.query.getall("tag", []))


def _passing(request: web.Request) -> bool:
    if "passing" not in request.query:
        return False
    value = request.query["passing"]
    if value == "" or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, "Invalid value for ?passing")


@methods("GET")
async def catalog_services(request: web.Request) -> web.StreamResponse:
    _check_dc(request)
    state = state_of(request)

    def build() -> dict[str, list[str]]:
        out: dict[str, set[str]] = {}
        for svc in state.services.values():
            out.setdefault(svc.name, set()).update(svc.tags)
        return {name: sorted(tags) for name, tags in sorted(out.items())}

    return await blocking_read(request, lambda: state.services_index, build)


@methods("GET")
async def catalog_service(request: web.Request) -> web.StreamResponse:
    name = _service_name(request)
    state = state_of(request)

    def build() -> list[dict[str, Any]]:
        return [
            render.catalog_service(s, state.node)
            for s in state.services_named(name)
            if _tagged(request, s)
        ]

    return await blocking_read(request, lambda: state.name_index(name), build)


@methods("GET")
async def catalog_nodes(request: web.Request) -> web.StreamResponse:
    _check_dc(request)
    state = state_of(request)
    return await blocking_read(
        request, lambda: state.nodes_index, lambda: [render.catalog_node(state.node)]
    )


@methods("GET")
async def catalog_datacenters(request: web.Request) -> web.StreamResponse:
    return json_ok(request, [state_of(request).node.datacenter])


@methods("GET")
async def health_service(request: web.Request) -> web.StreamResponse:
    name = _service_name(request)
    passing = _passing(request)
    state = state_of(request)

    def build() -> list[dict[str, Any]]:
        out = []
        node_checks = state.node_checks()
        for svc in state.services_named(name):
            if not _tagged(request, svc):
                continue
            checks = node_checks + state.checks_of(svc.id)
            if passing and any(c.status != "passing" for c in checks):
                continue
            out.append(
                {
                    "Node": render.node(state.node),
                    "Service": render.node_service(svc),
                    "Checks": [render.health_check(c, state.node) for c in checks],
                }
            )
        return out

    return await blocking_read(request, lambda: state.name_index(name), build)


@methods("GET")
async def health_checks(request: web.Request) -> web.StreamResponse:
    name = _service_name(request)
    state = state_of(request)

    def build() -> list[dict[str, Any]]:
        return [
            render.health_check(c, state.node)
            for s in state.services_named(name)
            for c in state.checks_of(s.id)
        ]

    return await blocking_read(request, lambda: state.name_index(name), build)


@methods("GET")
async def health_state(request: web.Request) -> web.StreamResponse:
    wanted = request.match_info.get("state", "")
    if not wanted:
        raise ApiError(400, "Missing check state")
    if wanted != "any" and wanted not in STATUSES:
        raise ApiError(400, "Invalid check state")
    _check_dc(request)
    state = state_of(request)

    def build() -> list[dict[str, Any]]:
        return [
            render.health_check(c, state.node)
            for c in sorted(state.checks.values(), key=lambda c: c.check_id)
            if wanted == "any" or c.status == wanted
        ]

    return await blocking_read(request, lambda: state.checks_index, build)


@methods("GET")
async def health_node(request: web.Request) -> web.StreamResponse:
    _check_dc(request)
    state = state_of(request)
    node = request.match_info.get("node", "")

    def build() -> list[dict[str, Any]]:
        if node != state.node.name:
            return []
        return [
            render.health_check(c, state.node)
            for c in sorted(state.checks.values(), key=lambda c: c.check_id)
        ]

    return await blocking_read(request, lambda: state.checks_index, build)


@methods("GET")
async def status_leader(request: web.Request) -> web.StreamResponse:
    return json_ok(request, f"{state_of(request).node.address}:8300")


@methods("GET")
async def status_peers(request: web.Request) -> web.StreamResponse:
    return json_ok(request, [f"{state_of(request).node.address}:8300"])


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_route("*", "/v1/catalog/services", catalog_services)
    r.add_route("*", "/v1/catalog/service/{name:.*}", catalog_service)
    r.add_route("*", "/v1/catalog/nodes", catalog_nodes)
    r.add_route("*", "/v1/catalog/datacenters", catalog_datacenters)
    r.add_route("*", "/v1/health/service/{name:.*}", health_service)
    r.add_route("*", "/v1/health/checks/{name:.*}", health_checks)
    r.add_route("*", "/v1/health/state/{state:.*}", health_state)
    r.add_route("*", "/v1/health/node/{node:.*}", health_node)
    r.add_route("*", "/v1/status/leader", status_leader)
    r.add_route("*", "/v1/status/peers", status_peers)
