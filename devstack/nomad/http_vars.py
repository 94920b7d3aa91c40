"""HTTP: /v1/vars and /v1/var/:path (read, CAS writes, delete 204, lock operations)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from devstack import godur
from devstack.nomad.codec import dumps
from devstack.nomad.ctx import ctx_of, require
from devstack.nomad.decode import DecodeError, parse_body
from devstack.nomad.errors import ApiError
from devstack.nomad.httpbase import block, paginate, reply, text
from devstack.nomad.variables import (
    DEFAULT_DELAY,
    DEFAULT_TTL,
    MAX_TTL,
    MIN_TTL,
    VarConflict,
    decrypted,
    metadata,
)

PATH_RE = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")
LOCK_OPS = ("lock-acquire", "lock-renew", "lock-release")


def _conflict(exc: VarConflict) -> web.Response:
    body = exc.body.encode() if isinstance(exc.body, str) else dumps(exc.body)
    resp = web.Response(status=409, body=body)
    resp.headers["Content-Type"] = "text/plain; charset=utf-8"
    if exc.index is not None:
        resp.headers["X-Nomad-Index"] = str(exc.index)
    return resp


async def list_vars(request: web.Request) -> web.Response:
    if request.method != "GET":
        return text(405, "Invalid method")
    c = ctx_of(request)
    st = c.state
    c.variables.sweep()
    authz = c.authz(request)
    ns = request.query.get("namespace") or "default"
    prefix = request.query.get("prefix", "")
    index = await block(request, st.notifier, lambda: st.table_index["variables"])
    out = sorted(
        (
            v
            for (vns, path), v in st.variables.items()
            if (ns == "*" or vns == ns)
            and path.startswith(prefix)
            and authz.allow_var(vns, path, "list")
        ),
        key=lambda v: (v["Namespace"], v["Path"]),
    )
    page, nxt = paginate(out, request, lambda v: f"{v['Namespace']}.{v['Path']}")
    return reply([metadata(v, lock=authz.management) for v in page], index, next_token=nxt)


def _cas(request: web.Request) -> int | None:
    raw = request.query.get("cas")
    if raw is None:
        return None
    try:
        value = int(raw)
        if value < 0:
            raise ValueError
    except ValueError as exc:
        raise ApiError(
            400, f'can not parse cas: strconv.ParseUint: parsing "{raw}": invalid syntax'
        ) from exc
    return value


def _duration(value: Any, default: int) -> int:
    if value in (None, "", 0):
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return godur.parse(str(value))


async def var_route(request: web.Request) -> web.Response:
    c = ctx_of(request)
    st = c.state
    path = request.match_info["path"]
    method = request.method
    if method not in ("GET", "PUT", "POST", "DELETE"):
        return text(400, "Invalid method")
    if not path:
        return text(400, "missing variable path")
    if not PATH_RE.match(path):
        return text(400, f'invalid path "{path}"')
    authz = c.authz(request)
    c.variables.sweep()
    if method == "GET":
        ns = request.query.get("namespace") or "default"
        require(authz.allow_var(ns, path, "read"))

        def index_of() -> int:
            v = st.variables.get((ns, path))
            return v["ModifyIndex"] if v else st.table_index["variables"]

        index = await block(request, st.notifier, index_of)
        var = st.variables.get((ns, path))
        if var is None:
            return text(404, "variable not found", index)
        return reply(decrypted(var, lock=authz.management), index)
    if method == "DELETE":
        ns = request.query.get("namespace") or "default"
        require(authz.allow_var(ns, path, "destroy"))
        try:
            index = c.variables.delete(ns, path, _cas(request))
        except VarConflict as exc:
            return _conflict(exc)
        resp = web.Response(status=204)
        resp.headers["X-Nomad-Index"] = str(index)
        return resp
    return await _write(request, path)


async def _write(request: web.Request, path: str) -> web.Response:
    c = ctx_of(request)
    authz = c.authz(request)
    ops = [op for op in LOCK_OPS if op in request.query]
    if len(ops) > 1:
        return text(400, "multiple lock operations")
    cas = _cas(request)
    if ops and cas is not None:
        return text(400, "CAS can't be used with lock operations")
    try:
        raw = parse_body(await request.read())
    except DecodeError as exc:
        return text(400, str(exc))
    body = {k.lower(): v for k, v in raw.items()} if isinstance(raw, dict) else {}
    ns = request.query.get("namespace") or body.get("namespace") or "default"
    require(authz.allow_var(ns, path, "write"))
    items = body.get("items") or {}
    if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
        return text(
            400,
            "json: cannot unmarshal into Go struct field VariableDecrypted.Items of type string",
        )
    if sum(len(k) + len(v) for k, v in items.items()) > 64 * 1024:
        return text(400, "variables are limited to 64KiB in total size")
    lock = {k.lower(): v for k, v in (body.get("lock") or {}).items()}
    try:
        if not ops:
            if lock.get("ttl") or lock.get("lockdelay"):
                return text(400, "variable should not contain lock definition")
            if not items:
                return text(400, "variable missing required Items object")
            var = c.variables.put(ns, path, items, cas, str(lock.get("id") or ""))
            return reply(decrypted(var), var["ModifyIndex"], query=False)
        op = ops[0]
        if op == "lock-acquire":
            try:
                ttl = _duration(lock.get("ttl"), DEFAULT_TTL)
                delay = _duration(lock.get("lockdelay"), DEFAULT_DELAY)
            except ValueError as exc:
                return text(400, str(exc))
            if not MIN_TTL <= ttl <= MAX_TTL:
                return text(400, "TTL must be between 10 seconds and 24 hours")
            var = c.variables.acquire(ns, path, items, ttl, delay)
            return reply(decrypted(var), var["ModifyIndex"], query=False)
        if op == "lock-release" and items:
            return text(400, "lock release operation doesn't take variable items")
        lock_id = str(lock.get("id") or "")
        if not lock_id:
            return text(400, "missing lock information")
        if op == "lock-renew":
            try:
                var = c.variables.renew(ns, path, lock_id)
            except LookupError as exc:
                return text(404, str(exc).strip("'\""))
            return reply(metadata(var), var["ModifyIndex"], query=False)
        try:
            var = c.variables.release(ns, path, lock_id)
        except RuntimeError as exc:
            return text(500, str(exc))
        return reply(decrypted(var), var["ModifyIndex"], query=False)
    except VarConflict as exc:
        return _conflict(exc)


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/vars", list_vars)
    app.router.add_route("*", "/v1/var/{path:.*}", var_route)
