"""The Nomad half of an install: ACL policy and token, the controller's Variable, the job.

- ACLs are detected, not configured: `/v1/acl/token/self` answers "ACL support disabled"
  (400) when they are off, and then no policy or token is written.
- The Variable lives at `nomad/jobs/<job ID>` in the job's namespace: the one path a task's
  workload identity may read without any policy, so only this job's tasks see the tokens.
  Items we do not manage (an operator's own MESH_* settings) are kept. Writes are CAS-fenced.
- The job is planned first (`/plan` with a diff, like `nomad job plan`): an unchanged job is not
  registered again, and a changed one is registered with EnforceIndex at the planned
  JobModifyIndex (`nomad job run -check-index`), so a concurrent edit fails instead of being
  overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any
from urllib.parse import quote

from controller.deploy.plandiff import diff_lines, text_diff
from controller.deploy.policies import NOMAD_POLICY
from controller.deploy.steps import InstallReport
from controller.nomad.client import NomadClient
from controller.nomad.errors import BadRequest, NotFound, PermissionDenied
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables, Variable

ACL_DISABLED = "ACL support disabled"
OUTLINE = re.compile(r'^\s*[+]?\s*(Job|Task Group|Task): "')
SECRET_KEYS = frozenset({"NOMAD_TOKEN", "VAULT_TOKEN", "CONSUL_HTTP_TOKEN"})

TokenCheck = Callable[[str], Awaitable[bool]]


def variable_path(job_id: str) -> str:
    return f"nomad/jobs/{job_id}"


async def acl_enabled(nomad: NomadClient) -> bool:
    try:
        await nomad.request("GET", "/v1/acl/token/self", namespace=None)
    except BadRequest as exc:
        if ACL_DISABLED in str(exc):
            return False
        raise
    return True


async def ensure_acl_policy(nomad: NomadClient, rules: str, report: InstallReport) -> None:
    path = f"/v1/acl/policy/{quote(NOMAD_POLICY, safe='')}"
    try:
        current = (await nomad.request("GET", path, namespace=None)).body or {}
    except NotFound:
        current = None
    if current is not None and str(current.get("Rules") or "").strip() == rules.strip():
        report.unchanged(f"Nomad: ACL policy {NOMAD_POLICY}")
        return
    if not report.dry_run:
        body = {
            "Name": NOMAD_POLICY,
            "Description": "nomad-tls-mesh controller (helm-less-deploy)",
            "Rules": rules,
        }
        await nomad.request("POST", path, body=body, namespace=None, idempotent=True)
    verb = "create" if current is None else "update"
    detail = text_diff(str(current.get("Rules") or ""), rules) if current is not None else ()
    report.changed(
        f"Nomad: {verb}d ACL policy {NOMAD_POLICY}",
        f"Nomad: {verb} ACL policy {NOMAD_POLICY}",
        detail,
    )


async def ensure_acl_token(
    nomad: NomadClient, current: str | None, check: TokenCheck, report: InstallReport
) -> str | None:
    """The controller's Nomad token: ``current`` when it still works and carries the policy,
    else a new client token. None only in a dry run that would create one."""
    if current and await check(current):
        report.unchanged(f"Nomad: controller ACL token (policy {NOMAD_POLICY})")
        return current
    why = "the stored one is no longer valid" if current else "none stored yet"
    if report.dry_run:
        report.changed(f"Nomad: create a client ACL token with policy {NOMAD_POLICY} ({why})")
        return None
    resp = await nomad.request(
        "POST",
        "/v1/acl/token",
        body={"Name": "mesh-controller", "Type": "client", "Policies": [NOMAD_POLICY]},
        namespace=None,
        idempotent=False,
    )
    token = resp.body or {}
    report.changed(
        f"Nomad: created a client ACL token with policy {NOMAD_POLICY} ({why}), "
        f"accessor {token.get('AccessorID', '?')}"
    )
    return str(token["SecretID"])


def token_checker(client_for: Callable[[str], NomadClient]) -> TokenCheck:
    """A check that ``token`` is a live Nomad token carrying our policy (asked with itself)."""

    async def check(token: str) -> bool:
        client = client_for(token)
        try:
            resp = await client.request("GET", "/v1/acl/token/self", namespace=None)
        except (PermissionDenied, NotFound):
            return False
        finally:
            await client.close()
        body = resp.body or {}
        return body.get("Type") == "management" or NOMAD_POLICY in (body.get("Policies") or [])

    return check


async def read_variable(variables: NomadVariables, job_id: str) -> Variable | None:
    return await variables.get(variable_path(job_id))


async def ensure_variable(
    variables: NomadVariables,
    job_id: str,
    current: Variable | None,
    wanted: Mapping[str, str | None],
    report: InstallReport,
    drop: Collection[str] = (),
) -> None:
    """Write ``wanted`` over the stored items (None = a token a dry run would create), and
    remove the ``drop`` items (secrets the job no longer uses must not linger in it)."""
    path = variable_path(job_id)
    where = f"Variable {path} (namespace {variables.namespace})"
    have = dict(current.items) if current else {}
    changed = sorted(k for k, v in wanted.items() if v is None or have.get(k) != v)
    dropped = sorted(k for k in drop if k in have and k not in wanted)
    if not changed and not dropped:
        report.unchanged(f"Nomad: {where}, items {', '.join(sorted(wanted))}")
        return
    if not report.dry_run:
        kept = {k: v for k, v in have.items() if k not in dropped}
        items = {**kept, **{k: v for k, v in wanted.items() if v is not None}}
        await variables.put(path, items, cas=current.modify_index if current else 0)
    what = ", ".join(
        part
        for part in (
            f"setting {', '.join(changed)}" if changed else "",
            f"removing {', '.join(dropped)}" if dropped else "",
        )
        if part
    )
    verb = ("wrote", "write") if current is None else ("updated", "update")
    report.changed(f"Nomad: {verb[0]} {where}, {what}", f"Nomad: {verb[1]} {where}, {what}")


async def ensure_job(jobs: NomadJobs, job: Mapping[str, Any], report: InstallReport) -> bool:
    """Register ``job`` (the API form, without the {"Job": ...} wrapper) if it differs; True
    when it was registered (never in a dry run). The step carries Nomad's own diff."""
    job_id = str(job["ID"])
    namespace = str(job.get("Namespace") or jobs.client.namespace)
    resp = await jobs.client.request(
        "POST",
        f"/v1/job/{quote(job_id, safe='')}/plan",
        body={"Job": dict(job), "Diff": True},
        namespace=namespace,
        idempotent=True,
    )
    plan = resp.body or {}
    diff_type = str((plan.get("Diff") or {}).get("Type") or "")
    where = f"{job.get('Type', '')} job {job_id} (namespace {namespace})"
    if diff_type == "None":
        report.unchanged(f"Nomad: {where}")
        return False
    detail = tuple(diff_lines(plan.get("Diff")))
    if diff_type == "Added":  # a whole new job: its outline, not every field
        detail = tuple(line for line in detail if OUTLINE.match(line))
    if not report.dry_run:
        await jobs.register_job(dict(job), enforce_index=int(plan.get("JobModifyIndex") or 0))
    done, planned = ("registered", "register") if diff_type == "Added" else ("updated", "update")
    report.changed(f"Nomad: {done} {where}", f"Nomad: {planned} {where}", detail)
    return not report.dry_run
