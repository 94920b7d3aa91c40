"""The Vault half of an install: the mesh PKI with its policies, and the controller's token.

The PKI and the two policies are `bootstrap_pki` (the same code as `controllerctl
bootstrap-pki`); a dry run only reads, and says what bootstrap would do. The controller's token
is an ORPHAN (revoking the installer's own token must not take the controller down) PERIODIC
token (it never reaches a max TTL; whoever holds it renews it within the period) with the
`mesh-controller` policy plus Vault's `default` policy, which allows lookup-self and
renew-self. A token that is still valid and carries the policy is kept, and renewed here when
less than half its period is left, so re-running install neither restarts the controller
with a new token nor lets an unrenewed one lapse.
"""

from __future__ import annotations

from typing import Any

from controller.deploy.plandiff import text_diff
from controller.deploy.steps import InstallReport
from controller.vault import (
    CONTROLLER_POLICY,
    WORKLOAD_POLICY,
    PkiLayout,
    VaultClient,
    VaultError,
    VaultPermissionDenied,
    bootstrap_pki,
)
from controller.vault.grants import role_params_match
from controller.vault.issuers import default_issuer_id
from controller.vault.policies import controller_policy, workload_policy
from controller.vault.workload_auth import (
    JWT_MOUNT,
    PLACEHOLDER_ACCESSOR,
    WorkloadAuth,
    auth_accessor,
    role_same,
)
from crds_equivalent.goparse import parse_go_duration

DEFAULT_TOKEN_PERIOD = "768h"  # noqa: S105 (a duration, not a secret)


async def ensure_pki(
    client: VaultClient,
    layout: PkiLayout,
    report: InstallReport,
    workload_auth: WorkloadAuth | None = None,
) -> None:
    """Mounts, root, intermediate, role, the mesh-controller/mesh-workload policies and the
    JWT auth method with the mesh's role."""
    if report.dry_run:
        await _inspect_pki(client, layout, report)
        await _inspect_auth(client, workload_auth or WorkloadAuth(jwks_url=None), report)
        return
    done = await bootstrap_pki(client, layout, workload_auth=workload_auth)
    for line in done.done:
        report.changed(f"Vault: {line}")
    for line in done.present:
        report.unchanged(f"Vault: {line}")


async def _inspect_pki(client: VaultClient, layout: PkiLayout, report: InstallReport) -> None:
    resp = await client.read("sys/mounts") or {}
    mounts = resp.get("data") if isinstance(resp.get("data"), dict) else resp
    for mount, what in ((layout.root_mount, "root"), (layout.int_mount, "intermediate")):
        existing = (mounts or {}).get(f"{mount}/")
        if isinstance(existing, dict) and existing.get("type") == "pki":
            report.unchanged(f"Vault: mount {mount}/")
        else:
            report.changed(f"Vault: enable pki mount {mount}/")
        if isinstance(existing, dict) and await default_issuer_id(client, mount):
            report.unchanged(f"Vault: {what} CA in {mount}/")
        else:
            report.changed(f"Vault: generate the {what} CA in {mount}/")
    role_path = f"{layout.int_mount}/roles/{layout.role}"
    role = await client.read(role_path)
    if role is None:
        report.changed(f"Vault: create role {role_path}")
    elif not role_params_match(layout.role_params(), role.get("data") or {}):
        report.changed(f"Vault: update role {role_path}")
    else:
        report.unchanged(f"Vault: role {role_path}")
    accessor = await auth_accessor(client, JWT_MOUNT)
    paths = layout.policy_paths(accessor or PLACEHOLDER_ACCESSOR)
    for name, text in (
        (WORKLOAD_POLICY, workload_policy(paths)),
        (CONTROLLER_POLICY, controller_policy(paths)),
    ):
        stored = await client.read(f"sys/policies/acl/{name}")
        have = str(((stored or {}).get("data") or {}).get("policy") or "")
        if stored is None:
            report.changed(f"Vault: create policy {name}")
        elif have.strip() != text.strip():
            report.changed(f"Vault: update policy {name}", detail=text_diff(have, text))
        else:
            report.unchanged(f"Vault: policy {name}")


async def _inspect_auth(client: VaultClient, auth: WorkloadAuth, report: InstallReport) -> None:
    """What bootstrap would do to the JWT auth method, its config and the mesh's role."""
    if await auth_accessor(client, auth.mount) is None:
        report.changed(f"Vault: enable the JWT auth method {auth.mount}/")
        if auth.jwks_url:
            report.changed(f"Vault: configure auth/{auth.mount}/config: jwks_url {auth.jwks_url}")
        report.changed(f"Vault: create JWT role auth/{auth.mount}/role/{auth.role}")
        return
    report.unchanged(f"Vault: JWT auth method {auth.mount}/")
    config = ((await client.read(f"auth/{auth.mount}/config")) or {}).get("data") or {}
    if auth.jwks_url and config.get("jwks_url") != auth.jwks_url:
        report.changed(f"Vault: configure auth/{auth.mount}/config: jwks_url {auth.jwks_url}")
    else:
        report.unchanged(f"Vault: auth/{auth.mount}/config (jwks_url {config.get('jwks_url')})")
    role = await client.read(f"auth/{auth.mount}/role/{auth.role}")
    if role is None:
        report.changed(f"Vault: create JWT role auth/{auth.mount}/role/{auth.role}")
    elif not role_same(auth.role_config((WORKLOAD_POLICY,)), role.get("data") or {}):
        report.changed(f"Vault: update JWT role auth/{auth.mount}/role/{auth.role}")
    else:
        report.unchanged(f"Vault: JWT role auth/{auth.mount}/role/{auth.role}")


async def _lookup(client: VaultClient, token: str) -> dict[str, Any] | None:
    """The token's lookup data, or None when Vault says it is not a valid token."""
    try:
        resp = await client.write("auth/token/lookup", {"token": token})
    except VaultPermissionDenied as exc:
        if "bad token" in str(exc):
            return None
        raise
    data = (resp or {}).get("data")
    return data if isinstance(data, dict) else None


async def ensure_controller_token(
    client: VaultClient,
    current: str | None,
    report: InstallReport,
    *,
    period: str = DEFAULT_TOKEN_PERIOD,
) -> str | None:
    """The controller's Vault token: ``current`` when still good, else a new one.

    Returns None only in a dry run that would create a token.
    """
    period_s = int(parse_go_duration(period))
    if current:
        info = await _lookup(client, current)
        if info is not None and CONTROLLER_POLICY in (info.get("policies") or []):
            accessor = str(info.get("accessor") or "?")
            ttl = int(info.get("ttl") or 0)
            own_period = int(info.get("period") or 0) or period_s  # the token's, if periodic
            if 0 < ttl < own_period // 2:
                if not report.dry_run:
                    await client.write("auth/token/renew", {"token": current})
                report.changed(
                    f"Vault: renewed the controller's token (accessor {accessor})",
                    f"Vault: renew the controller's token (accessor {accessor})",
                )
            else:
                report.unchanged(
                    f"Vault: controller token (accessor {accessor}, policy {CONTROLLER_POLICY})"
                )
            return current
    why = "the stored one is no longer valid" if current else "none stored yet"
    what = f"orphan periodic ({period}) token with policy {CONTROLLER_POLICY} ({why})"
    if report.dry_run:
        report.changed(f"Vault: create an {what}")
        return None
    resp = await client.write(
        "auth/token/create-orphan",
        {
            "policies": [CONTROLLER_POLICY],
            "period": period,
            "renewable": True,
            "display_name": "mesh-controller",
            "meta": {"created_by": "controllerctl install"},
        },
    )
    auth = (resp or {}).get("auth") or {}
    token = str(auth.get("client_token") or "")
    if not token:
        raise VaultError("Vault created no token (empty auth in the answer)")
    report.changed(f"Vault: created an {what}, accessor {auth.get('accessor', '?')}")
    return token


async def note_dormant_token(
    client: VaultClient, current: str | None, report: InstallReport
) -> None:
    """The Variable still holds a VAULT_TOKEN from an install before the job logged in with
    its workload identity: the install drops it (``ensure_variable``), and says which token
    it was (by accessor, never the token) so the operator can revoke it now. Not revoked
    here: the installer's token need not hold revoke rights, and nobody renews the token any
    more, so it lapses within its period anyway."""
    if not current:
        return
    info = await _lookup(client, current)
    if info is None:
        report.unchanged("Vault: the Variable's old VAULT_TOKEN is no longer valid; dropping it")
        return
    accessor = str(info.get("accessor") or "?")
    report.unchanged(
        f"Vault: the job logs in with its workload identity, so the Variable's VAULT_TOKEN "
        f"(accessor {accessor}) is dropped; unrenewed, it lapses within its period — revoke "
        f"it now with `vault token revoke -accessor {accessor}`"
    )
