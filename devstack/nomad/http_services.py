"""HTTP: Nomad-native service registrations and the client's check results.

Routes and texts of ``command/agent/service_registration_endpoint.go`` (``/v1/services``,
``/v1/service/:name``, ``DELETE /v1/service/:name/:id``), the RPCs behind them
(``nomad/service_registration_endpoint.go`` ``List``, ``GetService``, ``DeleteByID``), and
of ``command/agent/alloc_endpoint.go`` (``/v1/allocation/:id/services``,
``/v1/client/allocation/:id/checks``). There is no ``tag`` parameter: Nomad filters with
``?filter=`` (bexpr), which the twin ignores as it does elsewhere.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from aiohttp import web

from devstack.nomad.ctx import TwinCtx, ctx_of, require
from devstack.nomad.errors import ApiError
from devstack.nomad.httpbase import block, namespace, paginate, reply, text, token
from devstack.nomad.nsd import TABLE

INVALID_METHOD = "Invalid method"  # command/agent ErrInvalidMethod
MALFORMED_CHOOSE = "Parameter for choose must be in form '<number>|<key>'"


def _is_workload(c: TwinCtx, request: web.Request) -> bool:
    secret = token(request)
    return secret.count(".") == 2 and c.identities.verify(secret) is not None


def _may_read(c: TwinCtx, request: web.Request, ns: str) -> bool:
    """acl.go ``AllowServiceRegistrationReadList``: ACLs off or management, any workload
    identity, or ``read-job`` in the namespace."""
    authz = c.authz(request)
    return authz.management or _is_workload(c, request) or authz.allow_ns(ns, "read-job")


def _index(c: TwinCtx) -> int:
    return c.state.table_index[TABLE]


async def list_services(request: web.Request) -> web.Response:
    """``ServiceRegistration.List``: ``[{Namespace, Services: [{ServiceName, Tags}]}]``,
    tags as a set per service name; ``*`` groups by namespace over the namespaces the token
    may ``read-job`` in (none: an empty list, not a 403)."""
    if request.method != "GET":
        return text(405, INVALID_METHOD)
    c = ctx_of(request)
    ns = namespace(request)
    authz = c.authz(request)
    if ns != "*":
        require(_may_read(c, request, ns))

    def visible(reg_ns: str) -> bool:
        return authz.allow_ns(reg_ns, "read-job") if ns == "*" else reg_ns == ns

    index = await block(request, c.state.notifier, lambda: _index(c))
    grouped: dict[str, dict[str, set[str]]] = {}
    for (reg_ns, _), reg in sorted(c.state.services.items()):
        if visible(reg_ns):
            names = grouped.setdefault(reg_ns, {})
            names.setdefault(reg["ServiceName"], set()).update(reg["Tags"] or [])
    out = [
        {
            "Namespace": reg_ns,
            "Services": [
                {"ServiceName": name, "Tags": sorted(tags)} for name, tags in sorted(names.items())
            ],
        }
        for reg_ns, names in sorted(grouped.items())
    ]
    return reply(out, index)


async def service_route(request: web.Request) -> web.Response:
    """``ServiceRegistrationRequest``: one path segment reads, two delete."""
    parts = request.match_info["tail"].split("/")
    if len(parts) == 1:
        if request.method != "GET":
            return text(405, INVALID_METHOD)
        if parts[0] == "":
            return text(400, "missing service name")
        return await _get_service(request, parts[0])
    if len(parts) == 2:
        if request.method != "DELETE":
            return text(405, INVALID_METHOD)
        if parts[1] == "":
            return text(400, "missing service id")
        return await _delete_service(request, parts[1])
    return text(400, "invalid URI")


async def _get_service(request: web.Request, name: str) -> web.Response:
    """``ServiceRegistration.GetService``: the registrations of the name in the namespace, by
    ID, paginated (``<namespace>.<ID>`` tokens), then ``choose`` applied to the page."""
    c = ctx_of(request)
    ns = namespace(request)
    require(_may_read(c, request, ns))
    index = await block(request, c.state.notifier, lambda: _index(c))
    regs = [
        r
        for (reg_ns, _), r in sorted(c.state.services.items())
        if reg_ns == ns and r["ServiceName"] == name
    ]
    page, nxt = paginate(regs, request, lambda r: f"{r['Namespace']}.{r['ID']}")
    choose = request.query.get("choose", "")
    if choose:
        page = _choose(page, choose)
    return reply(page, index, next_token=nxt)


def _choose(services: list[dict[str, Any]], parameter: str) -> list[dict[str, Any]]:
    """``ServiceRegistration.choose``: ``n|key`` picks n registrations in the order of
    ``HashWith(key)`` (rendezvous hashing), stable for one key."""

    def bad() -> ApiError:
        return ApiError(400, f"failed to choose services: {MALFORMED_CHOOSE}")

    count, sep, key = parameter.partition("|")
    if not sep or not key:
        raise bad()
    try:
        n = int(count)  # strconv.Atoi: an optional sign, decimal digits only
    except ValueError:
        raise bad() from None
    if not count.lstrip("+-").isdigit():
        raise bad()

    def hash_with(s: dict[str, Any]) -> str:
        h = hashlib.md5(usedforsecurity=False)
        h.update(struct.pack(">Q", s["Port"] & 0xFFFFFFFFFFFFFFFF))
        for part in (s["AllocID"], s["ID"], s["Namespace"], s["Address"], s["ServiceName"]):
            h.update(part.encode())
        for tag in s["Tags"] or []:
            h.update(tag.encode())
        h.update(key.encode())
        return h.hexdigest()

    ranked = sorted(services, key=hash_with)  # sort.SliceStable by hash
    return ranked[: min(n, len(services))] if n > 0 else []


async def _delete_service(request: web.Request, sid: str) -> web.Response:
    """``ServiceRegistration.DeleteByID``: ``submit-job`` in the namespace; an unknown ID is
    the FSM's error, a plain 500; success is an empty 200 with ``X-Nomad-Index``."""
    c = ctx_of(request)
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "submit-job"))
    try:
        index = c.client.native.delete(ns, sid)
    except LookupError as exc:
        return text(500, str(exc))
    resp = web.Response(status=200)
    resp.headers["X-Nomad-Index"] = str(index)
    return resp


async def alloc_services(request: web.Request, alloc_id: str) -> web.Response:
    """``Alloc.GetServiceRegistrations``: ``read-job`` in the request's namespace; an alloc
    that does not exist there is 404 ``allocation not found``."""
    if request.method != "GET":
        return text(405, INVALID_METHOD)
    c = ctx_of(request)
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "read-job"))
    index = await block(request, c.state.notifier, lambda: _index(c))
    alloc = c.state.allocs.get(alloc_id)
    if alloc is None or alloc["Namespace"] != ns:
        return text(404, "allocation not found")
    regs = [r for _, r in sorted(c.state.services.items()) if r["AllocID"] == alloc_id]
    return reply(regs, index)


async def alloc_checks(request: web.Request, alloc_id: str) -> web.Response:
    """``Allocations.Checks`` (client/alloc_endpoint.go): ``read-job`` in the alloc's
    namespace, then the check store's map of check ID -> result — ``null`` when the
    allocation has none (checkstore ``List`` returns a nil map)."""
    c = ctx_of(request)
    alloc = c.state.allocs.get(alloc_id)
    if alloc is None or c.client.runner(alloc_id) is None:
        return text(404, f'Unknown allocation "{alloc_id}"')
    require(c.authz(request).allow_ns(alloc["Namespace"], "read-job"))
    return reply(c.client.native.alloc_results(alloc_id), query=False)


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/services", list_services)
    app.router.add_route("*", "/v1/service/{tail:.*}", service_route)
