"""HTTP: allocations (read, list, stop), client restart/signal, evaluations, deployments."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devstack.nomad import http_services
from devstack.nomad.codec import now_ns
from devstack.nomad.ctx import ctx_of, require
from devstack.nomad.decode import DecodeError, parse_body
from devstack.nomad.httpbase import (
    block,
    namespace,
    paginate,
    per_page,
    query_bool,
    reply,
    text,
)
from devstack.nomad.scheduler import new_eval
from devstack.nomad.wire import alloc_full, alloc_stub, eval_wire


def _visible(request: web.Request, capability: str = "read-job") -> Any:
    c = ctx_of(request)
    authz = c.authz(request)
    ns = namespace(request)
    if ns != "*":
        require(authz.allow_ns(ns, capability))
    return lambda item_ns: (ns == "*" and authz.allow_ns(item_ns, capability)) or item_ns == ns


async def list_allocs(request: web.Request) -> web.Response:
    if request.method != "GET":
        return text(405, "Invalid method")
    c = ctx_of(request)
    st = c.state
    visible = _visible(request)
    index = await block(request, st.notifier, lambda: st.table_index["allocs"])
    prefix = request.query.get("prefix", "")
    resources = query_bool(request, "resources")
    task_states = request.query.get("task_states", "true") != "false"
    allocs = sorted(
        (a for a in st.allocs.values() if visible(a["Namespace"]) and a["ID"].startswith(prefix)),
        key=lambda a: a["ID"],
    )
    if query_bool(request, "reverse"):
        allocs.reverse()
    page, nxt = paginate(allocs, request, lambda a: a["ID"])
    return reply(
        [alloc_stub(a, resources=resources, task_states=task_states) for a in page],
        index,
        next_token=nxt,
    )


async def alloc_route(request: web.Request) -> web.Response:
    c = ctx_of(request)
    st = c.state
    tail = request.match_info["tail"]
    alloc_id, _, suffix = tail.partition("/")
    if suffix == "stop":
        if request.method not in ("PUT", "POST"):
            return text(405, "Invalid method")
        return await stop_alloc(request, alloc_id)
    if suffix == "services":
        return await http_services.alloc_services(request, alloc_id)
    if suffix:
        return text(404, "")
    if request.method != "GET":
        return text(405, "Invalid method")
    authz = c.authz(request)

    def index_of() -> int:
        a = st.allocs.get(alloc_id)
        return a["ModifyIndex"] if a else st.table_index["allocs"]

    index = await block(request, st.notifier, index_of)
    alloc = st.allocs.get(alloc_id)
    if alloc is None:
        return text(404, "alloc not found", index)
    require(authz.allow_ns(alloc["Namespace"], "read-job"))
    return reply(alloc_full(alloc), index)


async def stop_alloc(request: web.Request, alloc_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    alloc = st.allocs.get(alloc_id)
    if alloc is None:
        return text(404, "alloc not found")
    require(c.authz(request).allow_ns(alloc["Namespace"], "alloc-lifecycle"))
    with st.txn("AllocationUpdateDesiredStatus") as tx:
        dt = {**(alloc.get("DesiredTransition") or {}), "Migrate": True}
        tx.put_alloc(
            {**alloc, "DesiredTransition": dt, "ModifyIndex": tx.index, "ModifyTime": now_ns()}
        )
        job = st.jobs.get((alloc["Namespace"], alloc["JobID"])) or alloc["Job"]
        ev = new_eval(job, "alloc-stop", tx.index)
        tx.put_eval(ev)
    c.sched.enqueue(ev["ID"])
    return reply({"EvalID": ev["ID"], "Index": tx.index}, tx.index, query=False)


async def client_alloc(request: web.Request) -> web.Response:
    c = ctx_of(request)
    alloc_id = request.match_info["alloc_id"]
    op = request.match_info["op"]
    if op == "checks":
        return await http_services.alloc_checks(request, alloc_id)
    if op not in ("restart", "signal"):
        return text(404, "")
    if request.method not in ("PUT", "POST"):
        return text(405, "Invalid method")
    alloc = c.state.allocs.get(alloc_id)
    if alloc is None:
        return text(404, f'Unknown allocation "{alloc_id}"')
    require(c.authz(request).allow_ns(alloc["Namespace"], "alloc-lifecycle"))
    raw = await request.read()
    body: dict[str, Any] = {}
    if raw.strip() or op == "signal":
        try:
            parsed = parse_body(raw)
        except DecodeError as exc:
            return text(400, str(exc))
        body = {k.lower(): v for k, v in (parsed or {}).items()} if isinstance(parsed, dict) else {}
    runner = c.client.runner(alloc_id)
    if runner is None:
        return text(500, f'Unknown allocation "{alloc_id}"')
    if op == "restart":
        name = body.get("taskname") or ""
        if name:
            if name not in runner.tasks:
                return text(500, f"Could not find task runner for task: {name}")
            # client/allocrunner/taskrunner/lifecycle.go TaskRunner.Restart: a pending or
            # dead task answers ErrTaskNotRunning (taskrunner/errors.go), a plain 500.
            if runner.task_states[name]["State"] in ("pending", "dead"):
                return text(500, "Task not running")
            await runner.restart_task(name)
        else:
            names = list(runner.tasks) if body.get("alltasks") else runner.running_tasks()
            for task in names:
                await runner.restart_task(task)
        return reply({}, query=False)
    signal = str(body.get("signal") or "")
    name = body.get("task") or ""
    if name and name not in runner.tasks:
        return text(500, "Task not found")
    for task in [name] if name else runner.running_tasks():
        await runner.signal_task(task, signal)
    return reply({}, query=False)


async def list_evals(request: web.Request) -> web.Response:
    st = ctx_of(request).state
    visible = _visible(request)
    index = await block(request, st.notifier, lambda: st.table_index["evals"])
    evals = sorted((e for e in st.evals.values() if visible(e["Namespace"])), key=lambda e: e["ID"])
    return reply([eval_wire(e) for e in evals], index)


async def read_eval(request: web.Request) -> web.Response:
    c = ctx_of(request)
    st = c.state
    eid = request.match_info["id"]
    index = await block(request, st.notifier, lambda: st.table_index["evals"])
    ev = st.evals.get(eid)
    if ev is None:
        return text(404, "eval not found", index)
    require(c.authz(request).allow_ns(ev["Namespace"], "read-job"))
    return reply(eval_wire(ev), index)


async def list_deployments(request: web.Request) -> web.Response:
    """Paged as Nomad pages it (``Deployment.List``, nomad/deployment_endpoint.go): by
    CreateIndex, then ID, the token ``<CreateIndex>.<ID>``. Answering every deployment in one
    body whatever ``per_page`` said made a client's whole-cluster LIST one response here that
    it never is against Nomad (at 10k jobs, tens of MB parsed at once)."""
    st = ctx_of(request).state
    visible = _visible(request)
    index = await block(request, st.notifier, lambda: st.table_index["deployment"])
    deps = sorted(
        (d for d in st.deployments.values() if visible(d["Namespace"])), key=_created_then_id
    )
    start = request.query.get("next_token", "")
    if start:
        deps = [d for d in deps if _at_or_after(d, start)]
    size = per_page(request)
    if size > 0 and len(deps) > size:
        return reply(deps[:size], index, next_token=_token(deps[size]))
    return reply(deps, index)


def _created_then_id(deployment: dict[str, Any]) -> tuple[int, str]:
    return int(deployment.get("CreateIndex") or 0), str(deployment["ID"])


def _token(deployment: dict[str, Any]) -> str:
    return f"{deployment.get('CreateIndex') or 0}.{deployment['ID']}"


def _at_or_after(deployment: dict[str, Any], token: str) -> bool:
    """Nomad's ``CreateIndexAndIDTokenizer``: the index compared as a number, then the ID; a
    token without a numeric index is compared as text, as Nomad falls back to."""
    index, _, ident = token.partition(".")
    if not ident or not index.isdigit():
        return _token(deployment) >= token
    return _created_then_id(deployment) >= (int(index), ident)


async def read_deployment(request: web.Request) -> web.Response:
    c = ctx_of(request)
    st = c.state
    did = request.match_info["id"]
    index = await block(request, st.notifier, lambda: st.table_index["deployment"])
    dep = st.deployments.get(did)
    if dep is None:
        return text(404, "deployment not found", index)
    require(c.authz(request).allow_ns(dep["Namespace"], "read-job"))
    return reply(dep, index)


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/allocations", list_allocs)
    app.router.add_route("*", "/v1/allocation/{tail:.+}", alloc_route)
    app.router.add_route("*", "/v1/client/allocation/{alloc_id}/{op}", client_alloc)
    app.router.add_get("/v1/evaluations", list_evals, allow_head=False)
    app.router.add_get("/v1/evaluation/{id}", read_eval, allow_head=False)
    app.router.add_get("/v1/deployments", list_deployments, allow_head=False)
    app.router.add_get("/v1/deployment/{id}", read_deployment, allow_head=False)
