"""I/O for ``controllerctl check``: Vault reachable and unsealed, its clock, the token, the PKI.

Token capabilities are asked of Vault itself (``sys/capabilities-self``) for every path of the
policy the controller runs with (parsed from ``controller.vault.policies``, so the check and
the policy cannot drift apart); with ``--pre`` for the paths the install/bootstrap writes. The
PKI checks read the root and the intermediate's default issuer and compare their lifetimes to
the thresholds of :mod:`controller.ctl.checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from controller.ctl import checks
from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import Clients
from controller.ctl.probes_nomad import transport
from controller.ctl.token_verdict import NAME as TOKEN_CHECK
from controller.ctl.token_verdict import token_verdict
from controller.vault import (
    CONTROLLER_POLICY,
    WORKLOAD_POLICY,
    IssuerInfo,
    VaultError,
    VaultNotFound,
    VaultPermissionDenied,
    VaultUnavailable,
    read_issuer,
    root_pem,
)
from controller.vault.policies import PolicyPaths, controller_policy
from controller.vault.token_facts import TokenFacts
from controller.vault.workload_auth import CONTROLLER_JWT_ROLE, JWT_MOUNT, JWT_ROLE

SECTION = "Vault"
PKI = "Vault PKI"
BOOTSTRAP_HINT = "run `controllerctl bootstrap-pki` (idempotent) with a token that may"


def _paths(clients: Clients) -> PolicyPaths:
    mesh = clients.settings.mesh
    return PolicyPaths(root_mount=mesh.root_mount, int_mount=mesh.pki_mount, role=mesh.pki_role)


def install_capabilities(p: PolicyPaths) -> dict[str, tuple[str, ...]]:
    """What bootstrapping the PKI and writing the policies needs (``check --pre``)."""
    return {
        f"sys/mounts/{p.root_mount}": ("update",),
        f"sys/mounts/{p.int_mount}": ("update",),
        f"sys/policies/acl/{CONTROLLER_POLICY}": ("update",),
        f"sys/policies/acl/{WORKLOAD_POLICY}": ("update",),
        f"{p.root_mount}/root/generate/internal": ("update",),
        f"{p.root_mount}/root/sign-intermediate": ("update",),
        f"{p.int_mount}/intermediate/generate/internal": ("update",),
        f"{p.int_mount}/intermediate/set-signed": ("update",),
        f"{p.int_mount}/config/issuers": ("update",),
        f"{p.int_mount}/roles/{p.role}": ("update",),
        # The JWT auth method Nomad's workloads log in at, and the mesh's role on it
        # (enabling an auth method is sudo-protected: sys/auth/*).
        f"sys/auth/{JWT_MOUNT}": ("update", "sudo"),
        f"auth/{JWT_MOUNT}/config": ("update",),
        f"auth/{JWT_MOUNT}/role/{JWT_ROLE}": ("update",),
        # The controller job's own login (its vault block): install stores no Vault token.
        f"auth/{JWT_MOUNT}/role/{CONTROLLER_JWT_ROLE}": ("update",),
    }


async def _granted(clients: Clients, paths: list[str]) -> dict[str, tuple[str, ...]]:
    resp = await clients.vault.write("sys/capabilities-self", {"paths": paths}) or {}
    data = resp.get("data")
    found = data if isinstance(data, dict) else resp
    return {p: tuple(found.get(p) or ()) for p in paths}


async def vault_checks(
    clients: Clients, pre: bool, now: Callable[[], datetime]
) -> list[CheckResult]:
    vault = clients.vault
    settings = clients.settings.vault
    name = f"Vault API reachable at {vault.conn.addr}, initialized and unsealed"
    mark, how, hint = transport(vault.conn.addr, settings.skip_verify, "VAULT")
    try:
        health = await vault.health()
    except VaultError as exc:
        tls = "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSLError" in str(exc)
        named = "set VAULT_CACERT (VAULT_ADDR must name the certificate's host)"
        fix = named if tls else "check VAULT_ADDR"
        return [CheckResult(SECTION, name, Mark.FAIL, str(exc), fix, unreachable=True)]
    if health.get("sealed") or not health.get("initialized", True):
        state = "sealed" if health.get("sealed") else "not initialized"
        return [
            CheckResult(
                SECTION, name, Mark.FAIL, f"Vault is {state}", "unseal Vault", unreachable=True
            )
        ]
    version = str(health.get("version") or "?")
    results = [CheckResult(SECTION, name, mark, f"{how}; version {version}", hint)]
    server_time = health.get("server_time_utc")
    remote = datetime.fromtimestamp(server_time, UTC) if isinstance(server_time, int) else None
    results.append(checks.clock_skew(SECTION, "Vault", remote, now()))
    results.append(await _token(clients, now))
    paths = _paths(clients)
    required = (
        install_capabilities(paths)
        if pre
        else checks.required_capabilities(controller_policy(paths))
    )
    who = "the install" if pre else f"the controller (policy {CONTROLLER_POLICY})"
    try:
        granted = await _granted(clients, list(required))
    except VaultError as exc:
        results.append(
            CheckResult(
                SECTION, f"Vault token has the capabilities {who} needs", Mark.FAIL, str(exc)
            )
        )
    else:
        results.append(checks.vault_capabilities(SECTION, who, required, granted))
    return results


async def _token(clients: Clients, now: Callable[[], datetime]) -> CheckResult:
    try:
        resp = await clients.vault.read("auth/token/lookup-self")
    except VaultPermissionDenied as exc:
        hint = "the token (VAULT_TOKEN or VAULT_TOKEN_FILE) is unknown, expired or revoked"
        return CheckResult(SECTION, TOKEN_CHECK, Mark.FAIL, str(exc), hint)
    except VaultError as exc:
        return CheckResult(SECTION, TOKEN_CHECK, Mark.WARN, f"could not look it up: {exc}")
    return token_verdict(SECTION, TokenFacts.from_lookup(resp), now().timestamp())


async def _intermediate(clients: Clients, mount: str) -> IssuerInfo | CheckResult:
    name = f"CA present in mount {mount}/"
    try:
        return await read_issuer(clients.vault, mount, "default")
    except VaultNotFound:
        return CheckResult(
            PKI, name, Mark.FAIL, f"no default issuer in {mount}/", BOOTSTRAP_HINT + " mount pki"
        )
    except VaultError as exc:
        return CheckResult(
            PKI, name, Mark.FAIL, str(exc), f"the token needs read on {mount}/issuer/+"
        )


async def _root(clients: Clients, mount: str) -> x509.Certificate | CheckResult:
    """The root through ``<mount>/cert/ca``, as the controller itself reads it."""
    name = f"CA present in mount {mount}/"
    try:
        pem = await root_pem(clients.vault, mount)
        return x509.load_pem_x509_certificate(pem.encode())
    except VaultNotFound:
        return CheckResult(
            PKI, name, Mark.FAIL, f"no CA in {mount}/", BOOTSTRAP_HINT + " mount pki"
        )
    except VaultError as exc:
        return CheckResult(
            PKI, name, Mark.FAIL, str(exc), f"the token needs read on {mount}/cert/ca"
        )
    except ValueError as exc:
        return CheckResult(PKI, name, Mark.FAIL, f"{mount}/cert/ca is not a certificate: {exc}")


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else cert.subject.rfc4514_string()


async def pki_checks(clients: Clients, now: Callable[[], datetime]) -> list[CheckResult]:
    mesh = clients.settings.mesh
    results: list[CheckResult] = []
    root = await _root(clients, mesh.root_mount)
    inter = await _intermediate(clients, mesh.pki_mount)
    for found in (root, inter):
        if isinstance(found, CheckResult):
            results.append(found)
    if isinstance(root, x509.Certificate):
        results.append(
            checks.validity(
                PKI,
                f"root CA ({mesh.root_mount}/, {_cn(root)})",
                root.not_valid_after_utc,
                now(),
                checks.ROOT_MIN_DAYS,
                "plan a root rotation: new root, cross-sign, re-bootstrap",
            )
        )
    if isinstance(inter, IssuerInfo):
        results.append(
            checks.validity(
                PKI,
                f"intermediate CA ({mesh.pki_mount}/, issuer {inter.issuer_id})",
                inter.not_after,
                now(),
                checks.INTERMEDIATE_MIN_DAYS,
                "run `controllerctl rotate-ca`; the controller also rotates automatically "
                "MESH_CA_ROTATE_BEFORE ahead of expiry, so check its logs",
            )
        )
    if isinstance(root, x509.Certificate) and isinstance(inter, IssuerInfo):
        results.append(_chained(root, inter, mesh.root_mount, mesh.pki_mount))
    results.append(await _role(clients))
    results.append(await _policy(clients, CONTROLLER_POLICY))  # mesh-workload: probes_workload
    return results


def _chained(
    root: x509.Certificate, inter: IssuerInfo, root_mount: str, int_mount: str
) -> CheckResult:
    name = f"intermediate is issued by the root of {root_mount}/"
    int_cert = x509.load_pem_x509_certificate(inter.certificate.encode())
    try:
        int_cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as exc:
        return CheckResult(
            PKI,
            name,
            Mark.FAIL,
            f"{int_mount}/ default issuer is not signed by {_cn(root)}: {exc}",
            "sidecars' chains will not verify; re-issue the intermediate from this root",
        )
    return CheckResult(PKI, name, Mark.OK, f"{inter.common_name} <- {_cn(root)}")


async def _role(clients: Clients) -> CheckResult:
    mesh = clients.settings.mesh
    path = f"{mesh.pki_mount}/roles/{mesh.pki_role}"
    name = f"PKI role {path} exists"
    try:
        found = await clients.vault.read(path)
    except VaultUnavailable as exc:
        return CheckResult(PKI, name, Mark.FAIL, str(exc), unreachable=True)
    except VaultError as exc:
        return CheckResult(PKI, name, Mark.FAIL, str(exc), f"the token needs read on {path}")
    if found is None:
        return CheckResult(PKI, name, Mark.FAIL, "no such role", BOOTSTRAP_HINT + " write roles")
    data = found.get("data") or {}
    domains = ", ".join(data.get("allowed_domains") or ()) or "none"
    return CheckResult(PKI, name, Mark.OK, f"allowed domains: {domains}")


async def _policy(clients: Clients, policy: str) -> CheckResult:
    name = f"Vault policy {policy} exists"
    try:
        found = await clients.vault.read(f"sys/policies/acl/{policy}")
    except VaultPermissionDenied:
        return CheckResult(
            PKI,
            name,
            Mark.WARN,
            "cannot verify: this token may not read sys/policies/acl",
            "normal for the controller's own token; re-run with an admin token to check",
        )
    except VaultError as exc:
        return CheckResult(PKI, name, Mark.FAIL, str(exc))
    if found is None:
        return CheckResult(PKI, name, Mark.FAIL, "missing", BOOTSTRAP_HINT + " write policies")
    return CheckResult(PKI, name, Mark.OK)
