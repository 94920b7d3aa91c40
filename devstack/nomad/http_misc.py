"""HTTP: namespaces, ACL (bootstrap, policies, tokens), agent/status basics, twin knobs."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from devstack.nomad.acl import PolicyError, parse_rules
from devstack.nomad.codec import new_id, now_ns, rfc3339
from devstack.nomad.ctx import VERSION, ctx_of, require
from devstack.nomad.httpbase import block, reply, text
from devstack.nomad.state import namespace_record


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        raise web.HTTPBadRequest(text="Request body is empty")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return {k.lower(): v for k, v in data.items()} if isinstance(data, dict) else {}


# ---- namespaces ----------------------------------------------------------------------
async def namespaces(request: web.Request) -> web.Response:
    c = ctx_of(request)
    st = c.state
    if request.method in ("PUT", "POST"):
        return await _upsert_namespace(request, None)
    if request.method != "GET":
        return text(405, "Invalid method")
    authz = c.authz(request)
    index = await block(request, st.notifier, lambda: st.table_index["namespaces"])
    out = [n for name, n in sorted(st.namespaces.items()) if authz.allow_any_ns(name)]
    return reply(out, index)


async def namespace_route(request: web.Request) -> web.Response:
    c = ctx_of(request)
    st = c.state
    name = request.match_info["name"]
    if request.method in ("PUT", "POST"):
        return await _upsert_namespace(request, name)
    if request.method == "DELETE":
        require(c.authz(request).management)
        if name == "default":
            return text(500, "default namespace can not be deleted")
        with st.txn("NamespaceDelete") as tx:
            st.namespaces.pop(name, None)
            tx.tables.add("namespaces")
        return reply(None, tx.index, query=False)
    if request.method != "GET":
        return text(405, "Invalid method")
    require(c.authz(request).allow_any_ns(name))
    index = await block(request, st.notifier, lambda: st.table_index["namespaces"])
    ns = st.namespaces.get(name)
    if ns is None:
        return text(404, "namespace not found", index)
    return reply(ns, index)


async def _upsert_namespace(request: web.Request, name: str | None) -> web.Response:
    c = ctx_of(request)
    st = c.state
    require(c.authz(request).management)
    body = await _json(request)
    name = name or body.get("name") or ""
    if not name:
        return text(400, "Namespace name required")
    with st.txn("NamespaceUpsert") as tx:
        old = st.namespaces.get(name)
        rec = namespace_record(name, body.get("description") or "", body.get("meta"), tx.index)
        if old is not None:
            rec["CreateIndex"] = old["CreateIndex"]
        st.namespaces[name] = rec
        tx.tables.add("namespaces")
    return reply(None, tx.index, query=False)


# ---- ACL -------------------------------------------------------------------------------
def _acl_on(request: web.Request) -> None:
    if not ctx_of(request).acl:
        raise web.HTTPBadRequest(text="ACL support disabled")


def new_token(name: str, type_: str, policies: list[str] | None, index: int) -> dict[str, Any]:
    return {
        "AccessorID": new_id(),
        "SecretID": new_id(),
        "Name": name,
        "Type": type_,
        "Policies": policies,
        "Roles": None,
        "Global": False,
        "CreateTime": rfc3339(now_ns()),
        "ExpirationTime": None,
        "ExpirationTTL": 0,
        "CreateIndex": index,
        "ModifyIndex": index,
    }


async def acl_bootstrap(request: web.Request) -> web.Response:
    _acl_on(request)
    st = ctx_of(request).state
    boot = next((t for t in st.acl_tokens.values() if t["Name"] == "Bootstrap Token"), None)
    if boot is not None:
        return text(400, f"ACL bootstrap already done (reset index: {boot['CreateIndex']})")
    return reply(bootstrap(st), st.index, query=False)


def bootstrap(st: Any) -> dict[str, Any]:
    with st.txn("ACLTokenUpserted") as tx:
        tok = new_token("Bootstrap Token", "management", None, tx.index)
        tok["Global"] = True
        st.acl_tokens[tok["SecretID"]] = tok
        tx.tables.add("acl_token")
    return tok


async def acl_policies(request: web.Request) -> web.Response:
    _acl_on(request)
    c = ctx_of(request)
    require(c.authz(request).management)
    st = c.state
    out = [
        {
            "Name": p["Name"],
            "Description": p["Description"],
            "JobACL": p["JobACL"],
            "CreateIndex": p["CreateIndex"],
            "ModifyIndex": p["ModifyIndex"],
        }
        for _, p in sorted(st.acl_policies.items())
    ]
    return reply(out, st.table_index["acl_policy"])


async def acl_policy(request: web.Request) -> web.Response:
    _acl_on(request)
    c = ctx_of(request)
    st = c.state
    name = request.match_info["name"]
    require(c.authz(request).management)
    if request.method == "GET":
        pol = st.acl_policies.get(name)
        if pol is None:
            return text(404, "ACL policy not found")
        return reply(pol, pol["ModifyIndex"])
    if request.method == "DELETE":
        with st.txn("ACLPolicyDeleted") as tx:
            st.acl_policies.pop(name, None)
            tx.tables.add("acl_policy")
        return reply(None, tx.index, query=False)
    if request.method not in ("PUT", "POST"):
        return text(405, "Invalid method")
    body = await _json(request)
    rules = body.get("rules") or ""
    try:
        parse_rules(rules)
    except PolicyError as exc:
        return text(400, str(exc))
    with st.txn("ACLPolicyUpserted") as tx:
        old = st.acl_policies.get(name)
        st.acl_policies[name] = {
            "Name": name,
            "Description": body.get("description") or "",
            "Rules": rules,
            "JobACL": body.get("jobacl"),
            "CreateIndex": old["CreateIndex"] if old else tx.index,
            "ModifyIndex": tx.index,
        }
        tx.tables.add("acl_policy")
    return reply(None, tx.index, query=False)


async def acl_token_create(request: web.Request) -> web.Response:
    _acl_on(request)
    c = ctx_of(request)
    st = c.state
    require(c.authz(request).management)
    body = await _json(request)
    type_ = body.get("type") or "client"
    policies = body.get("policies") or None
    if type_ == "client" and not policies:
        return text(400, "client token missing policies or roles")
    with st.txn("ACLTokenUpserted") as tx:
        tok = new_token(body.get("name") or "", type_, policies, tx.index)
        tok["Global"] = bool(body.get("global"))
        st.acl_tokens[tok["SecretID"]] = tok
        tx.tables.add("acl_token")
    return reply(tok, tx.index, query=False)


async def acl_tokens(request: web.Request) -> web.Response:
    _acl_on(request)
    c = ctx_of(request)
    require(c.authz(request).management)
    out = [{k: v for k, v in t.items() if k != "SecretID"} for t in c.state.acl_tokens.values()]
    return reply(out, c.state.table_index["acl_token"])


async def acl_token(request: web.Request) -> web.Response:
    _acl_on(request)
    c = ctx_of(request)
    st = c.state
    accessor = request.match_info["accessor"]
    if accessor == "self" and request.method == "GET":
        from devstack.nomad.httpbase import token

        tok = st.acl_tokens.get(token(request))
        if tok is None:
            return text(403, "Permission denied")
        return reply(tok, tok["ModifyIndex"])
    require(c.authz(request).management)
    found = next((t for t in st.acl_tokens.values() if t["AccessorID"] == accessor), None)
    if request.method == "DELETE":
        if found is not None:
            with st.txn("ACLTokenDeleted") as tx:
                st.acl_tokens.pop(found["SecretID"], None)
                tx.tables.add("acl_token")
        return reply(None, st.index, query=False)
    if found is None:
        return text(404, "ACL token not found")
    return reply(found, found["ModifyIndex"])


# ---- agent / status ------------------------------------------------------------------
async def agent_self(request: web.Request) -> web.Response:
    c = ctx_of(request)
    host = request.host.split(":")[0]
    member = {
        "Name": "nomad-twin.global",
        "Addr": host,
        "Port": 4648,
        "Tags": {"region": "global", "dc": "dc1", "build": VERSION, "role": "nomad"},
        "Status": "alive",
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }
    config = {
        "Region": "global",
        "Datacenter": "dc1",
        "NodeName": "nomad-twin",
        "Version": {
            "Version": VERSION,
            "VersionPrerelease": "",
            "VersionMetadata": "",
            "Revision": "twin",
        },
        "ACL": {"Enabled": c.acl},
        "Server": {"Enabled": True, "EventBufferSize": c.state.broker.size},
    }
    return reply({"config": config, "member": member, "stats": {}}, query=False)


async def agent_health(request: web.Request) -> web.Response:
    return reply(
        {"client": {"message": "ok", "ok": True}, "server": {"message": "ok", "ok": True}},
        query=False,
    )


async def jwks(request: web.Request) -> web.Response:
    """keyring_endpoint.go JWKSRequest: unauthenticated; QueryMeta headers, Cache-Control."""
    ids = ctx_of(request).identities
    resp = reply(ids.jwks(), max(1, ctx_of(request).state.table_index.get("root_keys", 0)))
    resp.headers["Cache-Control"] = f"max-age={ids.jwks_max_age()}"
    return resp


async def openid_configuration(request: web.Request) -> web.Response:
    """keyring_endpoint.go OIDCDiscoveryRequest: 404 unless the server has an oidc_issuer."""
    disco = ctx_of(request).identities.discovery()
    if disco is None:
        return text(404, "OIDC Discovery endpoint disabled")
    return reply(disco, query=False)


async def status_leader(request: web.Request) -> web.Response:
    return reply(f"{request.host.split(':')[0]}:4647", query=False)


async def nodes(request: web.Request) -> web.Response:
    c = ctx_of(request)
    return reply([n.record(1) for n in c.nodes], c.state.index)


# ---- twin knobs -------------------------------------------------------------------------
async def twin_faults(request: web.Request) -> web.Response:
    c = ctx_of(request)
    if request.method in ("PUT", "POST"):
        try:
            c.faults.update(json.loads(await request.read() or b"{}"))
        except (ValueError, TypeError) as exc:
            return text(400, str(exc))
        if c.faults.event_buffer_size:
            c.state.broker.resize(c.faults.event_buffer_size)
    elif request.method == "DELETE":
        c.faults.reset()
    return reply(c.faults.as_dict(), query=False)


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/namespaces", namespaces)
    app.router.add_route("*", "/v1/namespace", namespaces)
    app.router.add_route("*", "/v1/namespace/{name}", namespace_route)
    app.router.add_post("/v1/acl/bootstrap", acl_bootstrap)
    app.router.add_get("/v1/acl/policies", acl_policies, allow_head=False)
    app.router.add_route("*", "/v1/acl/policy/{name}", acl_policy)
    app.router.add_route("PUT", "/v1/acl/token", acl_token_create)
    app.router.add_route("POST", "/v1/acl/token", acl_token_create)
    app.router.add_get("/v1/acl/tokens", acl_tokens, allow_head=False)
    app.router.add_route("*", "/v1/acl/token/{accessor}", acl_token)
    app.router.add_get("/v1/agent/self", agent_self, allow_head=False)
    app.router.add_get("/v1/agent/health", agent_health, allow_head=False)
    app.router.add_get("/v1/status/leader", status_leader, allow_head=False)
    app.router.add_get("/.well-known/jwks.json", jwks, allow_head=False)
    app.router.add_get("/.well-known/openid-configuration", openid_configuration, allow_head=False)
    app.router.add_get("/v1/nodes", nodes, allow_head=False)
    app.router.add_route("*", "/_twin/faults", twin_faults)
