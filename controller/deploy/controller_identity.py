"""The controller's own Vault login on a cluster: a JWT auth role for its workload identity.

The system job's ``vault`` block has Nomad log the controller in with the task's workload
identity at the JWT auth method Nomad uses (``jwt-nomad``, what ``nomad setup vault``
creates), renew the token, log in again when renewal fails, and write the token to
``secrets/vault_token``, which the controller reads through ``VAULT_TOKEN_FILE``. This module
writes the role that login names: ``mesh-controller``, bound to the job ``mesh-controller``
in the install's namespace (no other job's identity gets the controller's policy), periodic
service tokens with the ``mesh-controller`` policy.

The auth method itself (its JWKS URL) belongs to the cluster's Vault integration; without it
the role cannot exist and the install says so: the job's tasks would fail their Vault login.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.deploy.steps import InstallReport
from controller.vault import CONTROLLER_POLICY, VaultClient
from controller.vault.workload_auth import CONTROLLER_JWT_ROLE

JWT_MOUNT = "jwt-nomad"  # Nomad's default vault.jwt_auth_backend_path
CONTROLLER_ROLE = CONTROLLER_JWT_ROLE  # the job's vault.role
AUDIENCE = "vault.io"  # Nomad's default vault.default_identity.aud
TOKEN_PERIOD = 1800  # Nomad renews at half the period; a lapse needs 15 min of no renewal


def controller_role(namespace: str, job_id: str = "mesh-controller") -> dict[str, Any]:
    """The role's parameters, as Vault reads them back (so a compare finds no drift)."""
    return {
        "role_type": "jwt",
        "bound_audiences": [AUDIENCE],
        "bound_claims": {"nomad_namespace": namespace, "nomad_job_id": job_id},
        "user_claim": "/nomad_job_id",
        "user_claim_json_pointer": True,
        "claim_mappings": {
            "nomad_namespace": "nomad_namespace",
            "nomad_job_id": "nomad_job_id",
            "nomad_task": "nomad_task",
        },
        "token_type": "service",
        "token_period": TOKEN_PERIOD,
        "token_policies": [CONTROLLER_POLICY],
    }


def logs_in_with_identity(job: Mapping[str, Any]) -> bool:
    """Whether a task of the job has a ``vault`` block, so Nomad logs it in with its workload
    identity and writes ``secrets/vault_token`` (VAULT_TOKEN_FILE, which wins over
    VAULT_TOKEN). The packaged job does; a ``--job-file`` without one still needs the
    Variable's long-lived VAULT_TOKEN, so the install follows the job, not a flag."""
    groups = job.get("TaskGroups") or []
    return any(
        isinstance(task, Mapping) and task.get("Vault")
        for group in groups
        if isinstance(group, Mapping)
        for task in group.get("Tasks") or []
    )


def _drifted(want: dict[str, Any], have: dict[str, Any]) -> bool:
    return any(have.get(k) != v for k, v in want.items())


async def ensure_controller_role(
    vault: VaultClient,
    namespace: str,
    report: InstallReport,
    job_id: str = "mesh-controller",
    mount: str = JWT_MOUNT,
) -> None:
    """Write ``auth/<mount>/role/mesh-controller`` unless it already says the same."""
    mounts = await vault.read("sys/auth") or {}
    listed = mounts.get("data") if isinstance(mounts.get("data"), dict) else mounts
    if f"{mount}/" not in (listed or {}):
        report.unchanged(
            f"Vault: no JWT auth method at {mount}/ (Nomad's Vault integration, "
            f"`nomad setup vault`): the controller's vault block cannot log in until it exists"
        )
        return
    path = f"auth/{mount}/role/{CONTROLLER_ROLE}"
    want = controller_role(namespace, job_id)
    have = await vault.read(path)
    if have is not None and not _drifted(want, have.get("data") or {}):
        report.unchanged(f"Vault: role {path}")
        return
    if not report.dry_run:
        await vault.write(path, want)
    verb = "create" if have is None else "update"
    report.changed(f"Vault: {verb}d role {path}", f"Vault: {verb} role {path}")
