"""Job writes: register (EnforceIndex, unchanged-spec detection, versions) and deregister.

These follow ``Job.Register``/``Job.Deregister``: an unchanged spec creates no new
version (only a fresh eval), EnforceIndex mismatches are plain 500 errors, stop keeps
the job as a new version with ``Stop: true``, purge deletes it, and a missing job is
not an error for deregister.
"""

from __future__ import annotations

from typing import Any

from devstack.nomad.canon import canonicalize_job, spec_of
from devstack.nomad.children import (
    is_parameterized,
    validate_job_update,
    validate_parameterized,
    validate_periodic,
)
from devstack.nomad.codec import now_ns
from devstack.nomad.errors import ApiError
from devstack.nomad.reschedule import policy_errors as reschedule_policy_errors
from devstack.nomad.scheduler import Scheduler, new_eval
from devstack.nomad.state import NomadState
from devstack.nomad.warnings import job_warnings

TRACKED_VERSIONS = 6
JOB_TYPES = ("service", "batch", "system", "sysbatch")


def _multierror(errors: list[str]) -> str:
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "".join(f"\n\t* {e}" for e in errors) + "\n\n"


def validate(job: dict[str, Any]) -> None:
    errors: list[str] = []
    if " " in job["ID"]:
        errors.append("Job ID contains a space")
    if job["Type"] not in JOB_TYPES:
        errors.append(f'Invalid job type: "{job["Type"]}"')
    if not 1 <= job["Priority"] <= 100:
        errors.append("Job priority must be between [1, 100]")
    if not job["TaskGroups"]:
        errors.append("Missing job task groups")
    seen: set[str] = set()
    for i, tg in enumerate(job["TaskGroups"] or [], start=1):
        name = tg["Name"]
        if not name:
            errors.append(f"Job task group {i} missing name")
        elif name in seen:
            errors.append(f"Job task group {i} redefines '{name}' from group {i - 1}")
        seen.add(name)
        group_errs = []
        if not tg["Tasks"]:
            group_errs.append("Missing tasks for task group")
        if tg["Count"] < 0:
            group_errs.append("Task group count can't be negative")
        for t in tg["Tasks"] or []:
            if not t["Name"]:
                group_errs.append("Task missing name")
            if not t["Driver"]:
                group_errs.append(f"Task {t['Name']} validation failed: Missing task driver")
        if job["Type"] not in ("system", "sysbatch"):
            # TaskGroup.Validate: ReschedulePolicy.Validate's multierror is flattened in.
            group_errs.extend(reschedule_policy_errors(tg.get("ReschedulePolicy")))
        if group_errs:
            errors.append(f"Task group {name} validation failed: " + _multierror(group_errs))
    # structs.Job.Validate, after the groups: periodic and parameterized blocks.
    periodic = job.get("Periodic")
    if periodic is not None and periodic.get("Enabled"):
        if job["Type"] not in ("batch", "sysbatch"):
            errors.append('Periodic can only be used with "batch" or "sysbatch" scheduler')
        if sub := validate_periodic(periodic):
            errors.append(_multierror(sub))
    if is_parameterized(job):
        if job["Type"] not in ("batch", "sysbatch"):
            errors.append('Parameterized job can only be used with "batch" or "sysbatch" scheduler')
        if sub := validate_parameterized(job["ParameterizedJob"]):
            errors.append(_multierror(sub))
    if errors:
        raise ApiError(500, _multierror(errors))


def register(
    st: NomadState,
    sched: Scheduler,
    api_job: dict[str, Any],
    namespace: str,
    enforce: bool,
    job_modify_index: int,
) -> dict[str, Any]:
    job_id = api_job["ID"]
    if namespace not in st.namespaces:
        raise ApiError(500, f'job "{job_id}" is in nonexistent namespace "{namespace}"')
    canon = canonicalize_job(api_job, namespace, st.vault_default_identity)
    validate(canon)
    warned = job_warnings(canon)
    key = (namespace, job_id)
    existing = st.jobs.get(key)
    if enforce:
        prefix = f"Enforcing job modify index {job_modify_index}"
        if job_modify_index == 0 and existing is not None:
            raise ApiError(500, f"{prefix}: job already exists")
        if job_modify_index != 0 and existing is None:
            raise ApiError(500, f"{prefix}: job does not exist")
        if existing is not None and existing["JobModifyIndex"] != job_modify_index:
            raise ApiError(
                500,
                f"{prefix}: job exists with conflicting job modify index: "
                f"{existing['JobModifyIndex']}",
            )
    validate_job_update(existing, canon)
    wants_eval = not (canon["Periodic"] or is_parameterized(canon))
    if existing is not None and spec_of(existing) == spec_of(canon):
        if not wants_eval:
            # Job.Register: "reply.JobModifyIndex = existingJob.JobModifyIndex", no write,
            # so no Index either.
            return _register_reply("", 0, existing["JobModifyIndex"], 0, warned)
        with st.txn("EvaluationUpdated") as tx:
            fresh = new_eval(existing, "job-register", tx.index)
            tx.put_eval(fresh)
        sched.enqueue(fresh["ID"])
        return _register_reply(fresh["ID"], tx.index, existing["JobModifyIndex"], tx.index, warned)
    ev: dict[str, Any] | None = None
    with st.txn("JobRegistered") as tx:
        job = {
            **canon,
            "Status": "pending",
            "Stable": False,
            "Version": existing["Version"] + 1 if existing else 0,
            "SubmitTime": now_ns(),
            "CreateIndex": existing["CreateIndex"] if existing else tx.index,
            "ModifyIndex": tx.index,
            "JobModifyIndex": tx.index,
        }
        _add_version(st, job)
        tx.put_job(job)
        ev = new_eval(job, "job-register", tx.index) if wants_eval else None
        if ev is not None:
            tx.put_eval(ev)
        tx.tables.add("job_version")
    if ev is not None:
        sched.enqueue(ev["ID"])
    return _register_reply(
        ev["ID"] if ev else "", tx.index if ev else 0, tx.index, tx.index, warned
    )


def _add_version(st: NomadState, job: dict[str, Any]) -> None:
    """state_store.go ``upsertJobVersion``: keep ``JobTrackedVersions`` untagged versions
    (the newest stable one swapped into the kept set); versions with a ``VersionTag`` are
    never collected ("they should always be kept")."""
    key = (job["Namespace"], job["ID"])
    versions = [job, *st.job_versions.get(key, [])]
    untagged = [v for v in versions if not v.get("VersionTag")]
    if len(untagged) > TRACKED_VERSIONS:
        stable = next((i for i, v in enumerate(untagged) if v.get("Stable")), -1)
        if stable == TRACKED_VERSIONS:
            untagged[stable - 1], untagged[stable] = untagged[stable], untagged[stable - 1]
        gone = untagged[TRACKED_VERSIONS]
        versions = [v for v in versions if v is not gone]
    st.job_versions[key] = versions


def _register_reply(
    eval_id: str, eval_index: int, jmi: int, index: int, warnings: str = ""
) -> dict[str, Any]:
    return {
        "EvalID": eval_id,
        "EvalCreateIndex": eval_index,
        "JobModifyIndex": jmi,
        "Warnings": warnings,
        "Index": index,
        "LastContact": 0,
        "KnownLeader": False,
        "NextToken": "",
    }


def deregister(
    st: NomadState, sched: Scheduler, namespace: str, job_id: str, purge: bool
) -> dict[str, Any]:
    key = (namespace, job_id)
    existing = st.jobs.get(key)
    if existing is None:
        return _dereg_reply("", 0, 0, 0)
    with st.txn("JobDeregistered") as tx:
        if purge:
            tx.delete_job(key)
            st.job_versions.pop(key, None)
            base = existing
        else:
            base = {
                **existing,
                "Stop": True,
                "Stable": False,
                "Version": existing["Version"] + 1,
                "ModifyIndex": tx.index,
                "JobModifyIndex": tx.index,
            }
            _add_version(st, base)
            tx.put_job(base)
            tx.tables.add("job_version")
        ev = new_eval(base, "job-deregister", tx.index, JobModifyIndex=tx.index)
        tx.put_eval(ev)
    sched.enqueue(ev["ID"])
    return _dereg_reply(ev["ID"], tx.index, tx.index, tx.index)


def _dereg_reply(eval_id: str, eval_index: int, jmi: int, index: int) -> dict[str, Any]:
    return {
        "EvalID": eval_id,
        "EvalCreateIndex": eval_index,
        "JobModifyIndex": jmi,
        "VolumeEvalID": "",
        "VolumeEvalIndex": 0,
        "Index": index,
        "LastContact": 0,
        "KnownLeader": False,
        "NextToken": "",
    }
