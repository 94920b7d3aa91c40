"""Least privilege in Vault, against a real OpenBao: the two policies exactly as shipped in
helm-less-deploy/policies/ (vault-mesh-controller.hcl, vault-mesh-workload.hcl).

- A workload token (a JWT login with a Nomad identity, as the client makes it) issues leaves
  for its own job's names only — from its own job's role — and can neither read nor change any
  role; the stored workload policy is the shipped file with the JWT method's accessor, and on a
  token from any other auth method it allows no issue at all.
- The controller's token runs the controller's trust path (VaultTrust: the root through
  `<root>/cert/ca`, the intermediate's issuers and default) — not only a root token can —,
  keeps the per-job roles in step, and cannot issue a leaf, so the controller never holds a
  leaf private key.
"""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest

from controller.vault import (
    WORKLOAD_POLICY,
    PkiLayout,
    VaultBadRequest,
    VaultClient,
    VaultConnection,
    VaultPermissionDenied,
    bootstrap_pki,
)
from controller.vault.grants import VaultCertGrants
from controller.vault.trust import VaultTrust
from controller.vault.workload_auth import JWT_MOUNT, auth_accessor
from devstack.vault import OpenBao
from devstack.workload_login import identity_issuer

pytestmark = pytest.mark.timeout(60)

POLICIES = Path(__file__).resolve().parents[2] / "helm-less-deploy" / "policies"
LAYOUT = PkiLayout()  # the shipped policy files name the default mounts pki/ and pki_int/


def token_for(bao: OpenBao, policy_file: str) -> str:
    """A token holding exactly one shipped policy (under a name of this test's own)."""
    root = hvac.Client(url=bao.addr, token=bao.root_token)
    name = f"sec-{policy_file.removesuffix('.hcl')}"
    root.sys.create_or_update_policy(name=name, policy=(POLICIES / policy_file).read_text())
    created = root.auth.token.create(policies=[name], no_default_policy=True, ttl="10m")
    return str(created["auth"]["client_token"])


def vault_as(bao: OpenBao, token: str) -> VaultClient:
    return VaultClient(VaultConnection(bao.addr, token))


async def test_a_workload_token_issues_its_own_jobs_names_only(openbao: OpenBao) -> None:
    async with identity_issuer(openbao, LAYOUT) as issuer:
        admin = vault_as(openbao, openbao.root_token)
        grants = VaultCertGrants(admin, LAYOUT)
        await grants.grant("mesh.default.web", ("web.service.consul", "web.service.*.consul"))
        await grants.grant("mesh.default.api", ("api.service.consul", "api.service.*.consul"))
        workload = vault_as(openbao, await issuer.login("default", "web"))
        own = f"{LAYOUT.int_mount}/issue/mesh.default.web"

        leaf = await workload.write(
            own, {"common_name": "web.service.consul", "alt_names": "web.service.dc1.consul"}
        )
        assert leaf is not None and "BEGIN" in leaf["data"]["certificate"]
        for outside in (
            "api.service.consul",  # another job's service
            "x.web.service.consul",  # no subdomains
            "web.example.com",
            "service.consul.evil.com",
            "localhost",
        ):
            with pytest.raises(VaultBadRequest, match="not allowed by this role"):
                await workload.write(own, {"common_name": outside, "ttl": "1h"})
        with pytest.raises(VaultBadRequest, match="not allowed by this role"):  # nor as a SAN
            await workload.write(
                own, {"common_name": "web.service.consul", "alt_names": "api.service.consul"}
            )
        for path in (
            f"{LAYOUT.int_mount}/issue/mesh.default.api",  # another job's role
            f"{LAYOUT.int_mount}/issue/{LAYOUT.role}",  # the shared role
            f"{LAYOUT.int_mount}/sign/mesh.default.web",
            f"{LAYOUT.int_mount}/sign-verbatim",
            f"{LAYOUT.int_mount}/config/issuers",  # nor switch the signing issuer
            f"{LAYOUT.int_mount}/roles/mesh.default.web",
            f"{LAYOUT.int_mount}/roles/mesh.default.evil",
        ):
            with pytest.raises(VaultPermissionDenied):
                await workload.write(path, {"common_name": "api.service.consul"})
        with pytest.raises(VaultPermissionDenied):
            await workload.read(f"{LAYOUT.int_mount}/roles/mesh.default.web")
        still = (await admin.read(f"{LAYOUT.int_mount}/roles/mesh.default.web") or {})["data"]
        assert sorted(still["allowed_domains"]) == ["web.service.*.consul", "web.service.consul"]


async def test_the_stored_workload_policy_is_the_shipped_one_and_needs_the_jwt_identity(
    openbao: OpenBao,
) -> None:
    async with identity_issuer(openbao, LAYOUT):
        admin = vault_as(openbao, openbao.root_token)
        accessor = await auth_accessor(admin, JWT_MOUNT)
        assert accessor
        stored = (await admin.read(f"sys/policies/acl/{WORKLOAD_POLICY}") or {})["data"]["policy"]
        shipped = (POLICIES / "vault-mesh-workload.hcl").read_text()
        assert stored.strip() == shipped.replace("auth_jwt_X", accessor).strip()
        await VaultCertGrants(admin, LAYOUT).grant("mesh.default.web", ("web.service.consul",))
        # The same policy on a token from any other auth method names no role: the template
        # resolves to nothing, so the token may issue nothing at all.
        plain = vault_as(openbao, token_for(openbao, "vault-mesh-workload.hcl"))
        with pytest.raises(VaultPermissionDenied):
            await plain.write(
                f"{LAYOUT.int_mount}/issue/mesh.default.web", {"common_name": "web.service.consul"}
            )
        assert "BEGIN" in str(await plain.read(f"{LAYOUT.int_mount}/cert/ca_chain"))


async def test_the_controller_token_runs_the_trust_path_but_cannot_issue(
    openbao: OpenBao,
) -> None:
    await bootstrap_pki(vault_as(openbao, openbao.root_token), LAYOUT)
    controller = vault_as(openbao, token_for(openbao, "vault-mesh-controller.hcl"))

    trust = await VaultTrust(
        controller, root_mount=LAYOUT.root_mount, int_mount=LAYOUT.int_mount
    ).get()
    assert "BEGIN CERTIFICATE" in trust.anchors_pem
    assert trust.default is not None  # read through <int>/config/issuers
    assert trust.default.common_name == LAYOUT.int_common_name

    assert (await controller.read(f"{LAYOUT.int_mount}/roles/{LAYOUT.role}")) is not None
    with pytest.raises(VaultPermissionDenied):  # never a leaf, never a leaf key
        await controller.write(
            f"{LAYOUT.int_mount}/issue/{LAYOUT.role}", {"common_name": "web.service.consul"}
        )
    with pytest.raises(VaultPermissionDenied):
        await controller.write(f"{LAYOUT.int_mount}/roles/{LAYOUT.role}", {"ttl": "1h"})
    with pytest.raises(VaultPermissionDenied):
        await controller.read("secret/data/anything")

    # Per-job roles: the controller keeps them in step, and still cannot issue from them.
    grants = VaultCertGrants(controller, LAYOUT)
    await grants.grant("mesh.default.web", ("web.service.consul",))
    await grants.grant("mesh.default.web", ("www.service.consul",))  # a renamed service
    role = await controller.read(f"{LAYOUT.int_mount}/roles/mesh.default.web")
    assert role is not None and role["data"]["allowed_domains"] == ["www.service.consul"]
    with pytest.raises(VaultPermissionDenied):
        await controller.write(
            f"{LAYOUT.int_mount}/issue/mesh.default.web", {"common_name": "www.service.consul"}
        )
    await grants.withdraw("mesh.default.web")
    assert await controller.read(f"{LAYOUT.int_mount}/roles/mesh.default.web") is None
