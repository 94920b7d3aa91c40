"""HTTP: /v1/jobs and /v1/job/:id[/suffix] (list, read, register, stop/purge, versions,
allocations, evaluations, deployments, summary, plan, evaluate, parse)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from devstack.nomad.acl import Authz
from devstack.nomad.canon import canonicalize_job, spec_of
from devstack.nomad.children import is_parameterized, is_periodic
from devstack.nomad.ctx import ctx_of, require
from devstack.nomad.decode import DecodeError, decode_request, parse_body
from devstack.nomad.diff import job_diff
from devstack.nomad.httpbase import block, namespace, paginate, query_bool, reply, text
from devstack.nomad.jobsvc import deregister, register
from devstack.nomad.reconcile import reconcile
from devstack.nomad.scheduler import new_eval
from devstack.nomad.wire import alloc_stub, eval_wire, job_stub

SUFFIXES = (
    "versions",
    "allocations",
    "evaluations",
    "deployments",
    "deployment",
    "summary",
    "plan",
    "evaluate",
)
PARSE_MSG = (
    "the devstack accepts JSON jobs only: /v1/jobs/parse (HCL) is not implemented; "
    "submit the JSON job (api.Job) instead"
)


async def jobs_root(request: web.Request) -> web.Response:
    if request.method == "GET":
        return await list_jobs(request)
    if request.method in ("PUT", "POST"):
        return await register_job(request, None)
    return text(405, "Invalid method")


async def jobs_parse(request: web.Request) -> web.Response:
    if request.method not in ("PUT", "POST"):
        return text(405, "Invalid method")
    return text(400, PARSE_MSG)


async def list_jobs(request: web.Request) -> web.Response:
    c = ctx_of(request)
    st = c.state
    authz = c.authz(request)
    ns = namespace(request)
    if ns != "*":
        require(authz.allow_ns(ns, "list-jobs"))
    index = await block(
        request, st.notifier, lambda: max(st.table_index["jobs"], st.table_index["job_summary"])
    )
    prefix = request.query.get("prefix", "")
    meta = query_bool(request, "meta")
    jobs = sorted(
        (
            j
            for (jns, _), j in st.jobs.items()
            if (jns == ns or (ns == "*" and authz.allow_ns(jns, "list-jobs")))
            and j["ID"].startswith(prefix)
        ),
        key=lambda j: (j["Namespace"], j["ID"]),
    )
    if query_bool(request, "reverse"):
        jobs.reverse()
    page, nxt = paginate(jobs, request, lambda j: f"{j['Namespace']}.{j['ID']}")
    return reply([job_stub(j, st.summary(j), meta) for j in page], index, next_token=nxt)


async def job_route(request: web.Request) -> web.Response:
    tail = request.match_info["tail"]
    for child_suffix, handler in _child_routes.items():  # command/agent/job_endpoint.go
        if tail.endswith(child_suffix) and len(tail) > len(child_suffix):
            if request.method not in ("PUT", "POST"):
                return text(405, "Invalid method")
            return await handler(request, tail[: -len(child_suffix)])
    job_id, _, suffix = tail.rpartition("/")
    if suffix not in SUFFIXES or not job_id:
        job_id, suffix = tail, ""
    if not job_id:
        return text(404, "")
    method = request.method
    if suffix == "":
        if method == "GET":
            return await read_job(request, job_id)
        if method in ("PUT", "POST"):
            return await register_job(request, job_id)
        if method == "DELETE":
            return await stop_job(request, job_id)
        return text(405, "Invalid method")
    if suffix == "plan":
        if method not in ("PUT", "POST"):
            return text(405, "Invalid method")
        return await plan_job(request, job_id)
    if suffix == "evaluate":
        if method not in ("PUT", "POST"):
            return text(405, "Invalid method")
        return await evaluate_job(request, job_id)
    if method != "GET":
        return text(405, "Invalid method")
    return await _job_reads[suffix](request, job_id)


async def read_job(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "read-job"))

    def index_of() -> int:
        job = st.jobs.get((ns, job_id))
        return job["ModifyIndex"] if job else st.table_index["jobs"]

    index = await block(request, st.notifier, index_of)
    job = st.jobs.get((ns, job_id))
    if job is None:
        return text(404, "job not found", index)
    return reply(job, index)


def _ci(obj: Any, key: str) -> Any:
    """A field of a raw (``any``-typed) struct, matched case-insensitively as Go decodes."""
    if not isinstance(obj, dict):
        return None
    for k, v in obj.items():
        if k.lower() == key.lower():
            return v
    return None


def register_allowed(authz: Authz, ns: str, job: dict[str, Any], policy_override: bool) -> bool:
    """nomad/job_endpoint.go ``Register``, the checks after ``submit-job``: per group, each
    volume (CSI: ``allowCSIMount`` = plugin read + ``csi-mount-volume``; host: read-only
    needs ``mount-readonly`` or ``mount-readwrite``, read-write needs ``mount-readwrite``;
    any other type is refused), a bidirectional mount needs ``mount-readwrite`` on its
    source, a CSI plugin task needs ``csi-register-plugin``, and ``PolicyOverride`` needs
    ``sentinel-override``. Every refusal is ``structs.ErrPermissionDenied``."""
    for tg in job.get("TaskGroups") or []:
        volumes = _ci(tg, "Volumes") or {}
        if not isinstance(volumes, dict):
            volumes = {}
        for vol in volumes.values():
            kind = _ci(vol, "Type")
            source = str(_ci(vol, "Source") or "")
            if kind == "csi":
                if not (authz.allow_plugin_read() and authz.allow_ns(ns, "csi-mount-volume")):
                    return False
            elif kind == "host":
                if _ci(vol, "ReadOnly"):
                    if not (
                        authz.allow_host_volume(source, "mount-readonly")
                        or authz.allow_host_volume(source, "mount-readwrite")
                    ):
                        return False
                elif not authz.allow_host_volume(source, "mount-readwrite"):
                    return False
            else:
                return False
        for task in (tg or {}).get("Tasks") or []:
            for mount in _ci(task, "VolumeMounts") or []:
                vol = volumes.get(str(_ci(mount, "Volume") or "")) or {}
                if _ci(mount, "PropagationMode") == "bidirectional" and not (
                    authz.allow_host_volume(str(_ci(vol, "Source") or ""), "mount-readwrite")
                ):
                    return False
            if _ci(task, "CSIPluginConfig") is not None and not authz.allow_ns(
                ns, "csi-register-plugin"
            ):
                return False
        if policy_override and not authz.allow_ns(ns, "sentinel-override"):
            return False
    return True


async def register_job(request: web.Request, path_id: str | None) -> web.Response:
    c = ctx_of(request)
    try:
        body = decode_request("JobRegisterRequest", await request.read())
    except DecodeError as exc:
        return text(400, str(exc))
    job = body.get("Job")
    if job is None:
        return text(400, "Job must be specified")
    if not job.get("ID"):
        return text(400, "Job ID hasn't been provided")
    if path_id is not None and job["ID"] != path_id:
        return text(400, "Job ID does not match name")
    if job.get("Type") == "system" and any(
        (g or {}).get("Scaling") for g in job.get("TaskGroups") or []
    ):
        return text(400, "Task groups with job type system do not support scaling blocks")
    prio = body.get("EvalPriority", 0)
    if prio and not 1 <= prio <= 100:
        return text(400, "Eval priority must be between 1 and 100 inclusively")
    ns = (
        request.query.get("namespace") or body.get("Namespace") or job.get("Namespace") or "default"
    )
    authz = c.authz(request)
    require(authz.allow_ns(ns, "submit-job"))
    require(register_allowed(authz, ns, job, bool(body.get("PolicyOverride"))))
    out = register(
        c.state,
        c.sched,
        job,
        ns,
        bool(body.get("EnforceIndex")),
        int(body.get("JobModifyIndex", 0)),
    )
    if c.children is not None:
        c.children.sync()  # PeriodicDispatch.Add, as the FSM does after a job upsert
    return reply(out, out["Index"], query=False)


async def stop_job(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "submit-job"))
    purge = query_bool(request, "purge")
    query_bool(request, "global")
    query_bool(request, "no_shutdown_delay")
    out = deregister(c.state, c.sched, ns, job_id, purge)
    if c.children is not None:
        c.children.sync()  # PeriodicDispatch.Remove for a stopped or purged periodic job
    return reply(out, out["Index"], query=False)


async def _versions(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "read-job"))
    index = await block(
        request, st.notifier, lambda: st.table_index["job_version"] or st.table_index["jobs"]
    )
    versions = st.job_versions.get((ns, job_id)) or []
    if not versions:
        return text(404, "job versions not found", index)
    diffs = None
    if query_bool(request, "diffs"):
        diffs = [job_diff(versions[i + 1], v) for i, v in enumerate(versions[:-1])]
    return reply(
        {
            "Versions": versions,
            "Diffs": diffs,
            "Index": index,
            "LastContact": 0,
            "KnownLeader": True,
            "NextToken": "",
        },
        index,
    )


async def _allocations(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "read-job"))
    index = await block(request, st.notifier, lambda: st.table_index["allocs"])
    job = st.jobs.get((ns, job_id))
    allocs = st.allocs_of((ns, job_id))
    if not query_bool(request, "all"):
        create = job["CreateIndex"] if job else None
        allocs = [a for a in allocs if a["Job"]["CreateIndex"] == create]
    return reply([alloc_stub(a) for a in allocs], index)


async def _evaluations(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "read-job"))
    index = await block(request, st.notifier, lambda: st.table_index["evals"])
    evals = sorted(st.evals_of((ns, job_id)), key=lambda e: -e["CreateIndex"])
    return reply([eval_wire(e) for e in evals], index)


def _deps(request: web.Request, job_id: str) -> list[dict[str, Any]]:
    st = ctx_of(request).state
    ns = namespace(request)
    return st.deployments_of((ns, job_id))


async def _deployments(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    require(c.authz(request).allow_ns(namespace(request), "read-job"))
    index = await block(request, c.state.notifier, lambda: c.state.table_index["deployment"])
    return reply(_deps(request, job_id), index)


async def _deployment(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    require(c.authz(request).allow_ns(namespace(request), "read-job"))
    index = await block(request, c.state.notifier, lambda: c.state.table_index["deployment"])
    deps = _deps(request, job_id)
    return reply(deps[0] if deps else None, index)


async def _summary(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "read-job"))
    index = await block(request, st.notifier, lambda: st.table_index["job_summary"])
    job = st.jobs.get((ns, job_id))
    if job is None:
        return text(404, "job not found", index)
    return reply(st.summary(job), index)


_job_reads = {
    "versions": _versions,
    "allocations": _allocations,
    "evaluations": _evaluations,
    "deployments": _deployments,
    "deployment": _deployment,
    "summary": _summary,
}


async def plan_job(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    try:
        body = decode_request("JobPlanRequest", await request.read())
    except DecodeError as exc:
        return text(400, str(exc))
    api_job = body.get("Job")
    if api_job is None:
        return text(400, "Job must be specified")
    if not api_job.get("ID"):
        return text(400, "Job must have a valid ID")
    if api_job["ID"] != job_id:
        return text(400, "Job ID does not match")
    ns = request.query.get("namespace") or api_job.get("Namespace") or "default"
    require(c.authz(request).allow_ns(ns, "submit-job"))
    new = canonicalize_job(api_job, ns, st.vault_default_identity)
    existing = st.jobs.get((ns, job_id))
    changed = existing is None or spec_of(existing) != spec_of(new)
    if existing is not None:
        hypo = (
            existing
            if not changed
            else {
                **new,
                "JobModifyIndex": -1,
                "Version": existing["Version"] + 1,
                "CreateIndex": existing["CreateIndex"],
            }
        )
    else:
        hypo = {**new, "JobModifyIndex": -1, "Version": 0, "CreateIndex": -1}
    plans = reconcile(hypo, st.allocs_of((ns, job_id)), [n.id for n in c.nodes])
    updates = {
        p.name: p.annotation() for p in plans if p.name in {g["Name"] for g in new["TaskGroups"]}
    }
    diff = job_diff(existing, new, updates) if body.get("Diff") else None
    out = {
        "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": None},
        "FailedTGAllocs": None,
        "JobModifyIndex": existing["JobModifyIndex"] if existing else 0,
        "CreatedEvals": None,
        "Diff": diff,
        "NextPeriodicLaunch": None,
        "Warnings": "",
        "Index": st.index,
    }
    return reply(out, st.index, query=False)


async def evaluate_job(request: web.Request, job_id: str) -> web.Response:
    c = ctx_of(request)
    st = c.state
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "submit-job"))
    job = st.jobs.get((ns, job_id))
    if job is None:
        return text(404, "job not found")
    if is_periodic(job):  # Job.Evaluate
        return text(500, "can't evaluate periodic job")
    if is_parameterized(job):
        return text(500, "can't evaluate parameterized job")
    with st.txn("EvaluationUpdated") as tx:
        ev = new_eval(job, "job-eval", tx.index)
        tx.put_eval(ev)
    c.sched.enqueue(ev["ID"])
    out = {
        "EvalID": ev["ID"],
        "EvalCreateIndex": tx.index,
        "JobModifyIndex": job["JobModifyIndex"],
        "Warnings": "",
        "Index": tx.index,
        "LastContact": 0,
        "KnownLeader": False,
        "NextToken": "",
    }
    return reply(out, tx.index, query=False)


async def periodic_force(request: web.Request, job_id: str) -> web.Response:
    """``periodicForceRequest`` -> ``Periodic.Force``: dispatch-job or submit-job."""
    c = ctx_of(request)
    ns = namespace(request)
    authz = c.authz(request)
    require(authz.allow_ns(ns, "dispatch-job") or authz.allow_ns(ns, "submit-job"))
    assert c.children is not None
    out = c.children.force(ns, job_id)
    return reply(out, out["Index"], query=False)


async def dispatch_job(request: web.Request, job_id: str) -> web.Response:
    """``jobDispatchRequest`` -> ``Job.Dispatch`` (dispatch-job only)."""
    c = ctx_of(request)
    try:
        body = parse_body(await request.read())
    except DecodeError as exc:
        return text(400, str(exc))
    if not isinstance(body, dict):
        return text(400, "json: cannot unmarshal into Go value of type structs.JobDispatchRequest")
    body_id = _ci(body, "JobID") or ""
    if body_id and body_id != job_id:
        return text(400, "Job ID does not match")
    meta = _ci(body, "Meta") or {}
    try:
        payload = base64.b64decode(_ci(body, "Payload") or "", validate=True)
    except (binascii.Error, TypeError):
        return text(400, "illegal base64 data at input byte 0")
    ns = namespace(request)
    require(c.authz(request).allow_ns(ns, "dispatch-job"))
    assert c.children is not None
    out = c.children.dispatch(ns, job_id, meta, payload, _ci(body, "IdPrefixTemplate") or "")
    return reply(out, out["Index"], query=False)


_child_routes = {"/periodic/force": periodic_force, "/dispatch": dispatch_job}


def routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/jobs", jobs_root)
    app.router.add_route("*", "/v1/jobs/parse", jobs_parse)
    app.router.add_route("*", "/v1/job/{tail:.+}", job_route)
