"""Vault's JWT auth method for Nomad workload identities: what `nomad setup vault` creates.

Nomad 1.10 reaches Vault only through workload identities: the client logs in at
``auth/<jwt_auth_backend_path>/login`` with the task's signed ``vault_default`` identity and a
role, and hands the task the token. This module makes that method exist as Nomad's own
``nomad setup vault`` does (command/setup_vault.go with command/asset/
vault-wi-default-auth-method-config.json and vault-wi-default-role.json): a ``jwt`` method at
``jwt-nomad`` (the client's default path) that trusts the cluster's JWKS and accepts EdDSA and
RS256, and a role with audience ``vault.io``, namespace/job/task as alias metadata
(``claim_mappings``), periodic (30 m) ``service`` tokens that the client renews.

Two deliberate differences, both for the mesh's own role (``mesh-workload``, named by the
sidecar's ``vault.role``), never for the operator's ``nomad-workloads``:
- ``user_claim`` is ``/sub`` (``<region>:<namespace>:<job>:<group>:<task>:<identity>``), not
  ``/nomad_job_id``. The entity alias is keyed by that claim, and Vault refreshes an alias's
  metadata at every login: with the job ID as key, two jobs of the same ID in two namespaces
  share one alias, and the templated policy would read whichever namespace logged in last.
  ``sub`` is unique per task, and stable across allocations and a parent's children.
- ``token_policies`` is the mesh's workload policy alone.
The method's config (JWKS URL) is written only when it is missing or differs from what was
asked; an operator's ``default_role`` is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.vault.client import VaultBadRequest, VaultClient, VaultError
from crds_equivalent.goparse import parse_go_duration

JWT_MOUNT = "jwt-nomad"  # Nomad's default client vault.jwt_auth_backend_path
JWT_ROLE = "mesh-workload"  # the sidecars' vault.role (MeshConfig.vault_role)
CONTROLLER_JWT_ROLE = "mesh-controller"  # the controller job's vault.role (deploy writes it)
AUDIENCE = "vault.io"  # setup_vault.go vaultAud, the server's vault.default_identity.aud
DEFAULT_ROLE = "nomad-workloads"  # setup_vault.go vaultRole: the method's default_role
TOKEN_PERIOD = "30m"  # noqa: S105 (a duration, not a secret)
DEFAULT_JWKS_URL = "http://localhost:4646/.well-known/jwks.json"  # nomad setup vault -jwks-url
PLACEHOLDER_ACCESSOR = "auth_jwt_X"  # what Nomad's own asset policy writes before setup


@dataclass(frozen=True)
class WorkloadAuth:
    """The JWT auth method the cluster's workloads log in at, and the mesh's role on it.

    ``jwks_url`` None leaves the method's config alone (it must be configured already)."""

    jwks_url: str | None = DEFAULT_JWKS_URL
    jwks_ca_pem: str = ""
    mount: str = JWT_MOUNT
    role: str = JWT_ROLE
    audience: str = AUDIENCE
    token_period: str = TOKEN_PERIOD

    def auth_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "jwks_url": self.jwks_url,
            "jwt_supported_algs": ["EdDSA", "RS256"],
            "default_role": DEFAULT_ROLE,
        }
        if self.jwks_ca_pem:
            config["jwks_ca_pem"] = self.jwks_ca_pem
        return config

    def role_config(self, policies: tuple[str, ...]) -> dict[str, Any]:
        return {
            "role_type": "jwt",
            "bound_audiences": [self.audience],
            "user_claim": "/sub",
            "user_claim_json_pointer": True,
            "claim_mappings": {
                "nomad_namespace": "nomad_namespace",
                "nomad_job_id": "nomad_job_id",
                "nomad_task": "nomad_task",
            },
            "token_type": "service",
            "token_period": self.token_period,
            "token_policies": list(policies),
        }


Say = Callable[[str, bool], None]  # (line, changed)


async def auth_accessor(client: VaultClient, mount: str) -> str | None:
    """The mount accessor of auth method ``mount`` (templated policies name it), or None."""
    resp = await client.read("sys/auth") or {}
    listed = resp.get("data") if isinstance(resp.get("data"), dict) else resp
    entry = (listed or {}).get(f"{mount}/")
    if not isinstance(entry, dict):
        return None
    if entry.get("type") != "jwt":
        raise VaultError(f"auth mount {mount}/ exists with type {entry.get('type')!r}, not jwt")
    return str(entry.get("accessor") or "") or None


async def ensure_mount(client: VaultClient, auth: WorkloadAuth, say: Say) -> str:
    """Enable the jwt method at ``auth.mount`` unless it is there; its accessor."""
    accessor = await auth_accessor(client, auth.mount)
    if accessor:
        say(f"JWT auth method {auth.mount}/", False)
        return accessor
    await client.write(f"sys/auth/{auth.mount}", {"type": "jwt"})
    say(f"enabled the JWT auth method {auth.mount}/", True)
    accessor = await auth_accessor(client, auth.mount)
    if not accessor:
        raise VaultError(f"auth mount {auth.mount}/ has no accessor after enabling it")
    return accessor


async def ensure_config(client: VaultClient, auth: WorkloadAuth, say: Say) -> None:
    """Point the method at the cluster's JWKS when it is not already."""
    path = f"auth/{auth.mount}/config"
    have = ((await client.read(path)) or {}).get("data") or {}
    if auth.jwks_url is None:
        configured = have.get("jwks_url") or "NONE: workloads cannot log in until it is set"
        say(f"{path} (jwks_url {configured})", False)
        return
    want = auth.auth_config()
    same = have.get("jwks_url") == auth.jwks_url and set(
        have.get("jwt_supported_algs") or []
    ) >= set(want["jwt_supported_algs"])
    if same and (not auth.jwks_ca_pem or have.get("jwks_ca_pem") == auth.jwks_ca_pem):
        say(f"{path} (jwks_url {auth.jwks_url})", False)
        return
    if have.get("default_role"):
        want["default_role"] = have["default_role"]
    try:
        await client.write(path, want)
    except VaultBadRequest as err:  # Vault fetches the JWKS before it stores the config
        raise VaultError(
            f"Vault could not use the JWKS at {auth.jwks_url} ({err}); give --jwks-url an "
            "address of Nomad's /.well-known/jwks.json that Vault itself can reach"
        ) from err
    say(f"configured {path}: jwks_url {auth.jwks_url}", True)


def role_diff(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """What a stored JWT role has that ``role_config`` does not want, one line per key
    (Vault answers periods in seconds and lists in its own order); empty when the same."""
    diffs: list[str] = []
    for key, value in want.items():
        got = have.get(key)
        if key == "token_period":
            same = int(parse_go_duration(str(value))) == int(got or 0)
        elif isinstance(value, list):
            same = sorted(map(str, value)) == sorted(map(str, got or []))
        else:
            same = value == got
        if not same:
            diffs.append(f"{key} is {got!r}, expected {value!r}")
    return diffs


def role_same(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """A stored JWT role against ``role_config``."""
    return not role_diff(want, have)


async def ensure_role(
    client: VaultClient, auth: WorkloadAuth, policies: tuple[str, ...], say: Say
) -> None:
    """The mesh's login role on the method, exactly as ``role_config`` says."""
    path = f"auth/{auth.mount}/role/{auth.role}"
    want = auth.role_config(policies)
    resp = await client.read(path)
    if resp is not None and role_same(want, resp.get("data") or {}):
        say(f"JWT role {path}", False)
        return
    await client.write(path, want)
    say(f"{'updated' if resp is not None else 'created'} JWT role {path}", True)
