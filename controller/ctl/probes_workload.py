"""I/O for ``controllerctl check``: the sidecars' way into Vault, probed live.

A sidecar gets its leaf only if three things hold, and none of them shows in the PKI: the JWT
auth method Nomad's clients log in at (``jwt-nomad``) exists and can verify their identities
(it has keys to check them with), the mesh's login role on it (``MESH_VAULT_ROLE``, default
``mesh-workload``) binds the audience Nomad signs for and maps the namespace and job ID into
the alias metadata, and the workload policy is the shipped one — its templated issue path
names the method's own accessor, so a policy left from another mount or edited by hand either
issues nothing or more than the job's own role. The expected values are the ones the
bootstrap writes (``controller.vault.workload_auth`` ``role_config`` and ``role_diff``,
``controller.vault.policies`` ``workload_policy``), so check and bootstrap cannot disagree.

The controller's own token may read none of these paths; like the policy check of the PKI
section, that is ‼ "cannot verify", never ×.
"""

from __future__ import annotations

from typing import Any

from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import Clients
from controller.vault import WORKLOAD_POLICY, VaultError, VaultPermissionDenied, VaultUnavailable
from controller.vault.policies import PolicyPaths, workload_policy
from controller.vault.workload_auth import JWT_MOUNT, WorkloadAuth, auth_accessor, role_diff

SECTION = "Vault workload identity"
FIX = "run `controllerctl bootstrap-pki` (idempotent) with an admin token"
_NO_READ = "normal for the controller's own token; re-run with an admin token to check"
# What a jwt method verifies signatures with; one of them must be set (Vault's jwt config).
_KEY_SOURCES = ("jwks_url", "jwt_validation_pubkeys", "oidc_discovery_url", "jwks_pairs")


def _cannot(name: str, exc: VaultError, path: str) -> CheckResult:
    if isinstance(exc, VaultPermissionDenied):
        return CheckResult(
            SECTION, name, Mark.WARN, f"cannot verify: may not read {path}", _NO_READ
        )
    return CheckResult(
        SECTION, name, Mark.FAIL, str(exc), unreachable=isinstance(exc, VaultUnavailable)
    )


async def workload_checks(clients: Clients) -> list[CheckResult]:
    """The method, the mesh's role on it, and the workload policy, in that order."""
    method, accessor = await _method(clients)
    results = [method]
    role = clients.settings.mesh.vault_role
    if role:
        results.append(await _role(clients, role))
    results.append(await _policy(clients, accessor))
    return results


async def _method(clients: Clients) -> tuple[CheckResult, str | None]:
    name = f"JWT auth method {JWT_MOUNT}/ exists and can verify Nomad's identities"
    try:
        accessor = await auth_accessor(clients.vault, JWT_MOUNT)
        config = ((await clients.vault.read(f"auth/{JWT_MOUNT}/config")) or {}).get("data")
    except VaultError as exc:
        return _cannot(name, exc, f"sys/auth and auth/{JWT_MOUNT}/config"), None
    if accessor is None:
        detail = "no such auth method: Nomad's clients cannot log the sidecars in"
        return CheckResult(SECTION, name, Mark.FAIL, detail, FIX), None
    keys = [k for k in _KEY_SOURCES if (config or {}).get(k)]
    if not keys:
        detail = f"accessor {accessor}; no jwks_url (nor keys): no login can be verified yet"
        hint = "give `controllerctl bootstrap-pki` --jwks-url <Nomad>/.well-known/jwks.json"
        return CheckResult(SECTION, name, Mark.FAIL, detail, hint), accessor
    source = (config or {}).get("jwks_url") or keys[0]
    return CheckResult(SECTION, name, Mark.OK, f"accessor {accessor}; {source}"), accessor


async def _role(clients: Clients, role: str) -> CheckResult:
    path = f"auth/{JWT_MOUNT}/role/{role}"
    name = f"JWT role {path} is the mesh's"
    try:
        found = await clients.vault.read(path)
    except VaultError as exc:
        return _cannot(name, exc, path)
    if found is None:
        detail = f"no such role: sidecars (vault.role = {role!r}) cannot log in, so get no leaf"
        return CheckResult(SECTION, name, Mark.FAIL, detail, FIX)
    want = WorkloadAuth(role=role).role_config((WORKLOAD_POLICY,))
    diff = role_diff(want, _data(found))
    if diff:
        return CheckResult(SECTION, name, Mark.FAIL, "; ".join(diff), FIX + " to rewrite it")
    audiences = ", ".join(want["bound_audiences"])
    detail = f"bound audience {audiences}; user_claim /sub; policy {WORKLOAD_POLICY}"
    return CheckResult(SECTION, name, Mark.OK, detail)


async def _policy(clients: Clients, accessor: str | None) -> CheckResult:
    path = f"sys/policies/acl/{WORKLOAD_POLICY}"
    name = f"Vault policy {WORKLOAD_POLICY} is the shipped one (its own job's role only)"
    if accessor is None:
        return CheckResult(
            SECTION, name, Mark.WARN, f"cannot compare without the {JWT_MOUNT}/ accessor", FIX
        )
    try:
        found = await clients.vault.read(path)
    except VaultError as exc:
        return _cannot(name, exc, path)
    if found is None:
        return CheckResult(SECTION, name, Mark.FAIL, "missing: sidecars may issue nothing", FIX)
    mesh = clients.settings.mesh
    paths = PolicyPaths(mesh.root_mount, mesh.pki_mount, mesh.pki_role, accessor)
    if str(_data(found).get("policy") or "").strip() != workload_policy(paths).strip():
        detail = (
            f"differs from what the bootstrap writes for {mesh.pki_mount}/ and accessor "
            f"{accessor}: `vault policy read {WORKLOAD_POLICY}` to see it"
        )
        return CheckResult(SECTION, name, Mark.FAIL, detail, FIX + " to rewrite it")
    return CheckResult(SECTION, name, Mark.OK)


def _data(resp: dict[str, Any]) -> dict[str, Any]:
    data = resp.get("data")
    return data if isinstance(data, dict) else resp
