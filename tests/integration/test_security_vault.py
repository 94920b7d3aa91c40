"""Least privilege in Vault, against a real OpenBao: the two policies exactly as shipped in
helm-less-deploy/policies/ (vault-mesh-controller.hcl, vault-mesh-workload.hcl).

- A workload token issues leaves for names inside the mesh domain only, and can neither read
  nor change the role.
- The controller's token runs the controller's trust path (VaultTrust: the root through
  `<root>/cert/ca`, the intermediate's issuers and default) — not only a root token can — and
  cannot issue a leaf, so the controller never holds a leaf private key.
"""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest

from controller.vault import (
    PkiLayout,
    VaultClient,
    VaultConnection,
    VaultError,
    VaultPermissionDenied,
    bootstrap_pki,
)
from controller.vault.trust import VaultTrust
from devstack.vault import OpenBao

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


async def test_a_workload_token_issues_inside_the_domain_only(openbao: OpenBao) -> None:
    await bootstrap_pki(vault_as(openbao, openbao.root_token), LAYOUT)
    workload = vault_as(openbao, token_for(openbao, "vault-mesh-workload.hcl"))
    issue = f"{LAYOUT.int_mount}/issue/{LAYOUT.role}"

    leaf = await workload.write(issue, {"common_name": "web.service.consul", "ttl": "1h"})
    assert leaf is not None and "BEGIN" in leaf["data"]["certificate"]

    for outside in ("web.example.com", "service.consul.evil.com", "localhost"):
        with pytest.raises(VaultError) as refused:
            await workload.write(issue, {"common_name": outside, "ttl": "1h"})
        assert not isinstance(refused.value, VaultPermissionDenied)  # the role said no
    with pytest.raises(VaultError):  # a valid name, but a SAN outside the domain
        await workload.write(
            issue, {"common_name": "web.service.consul", "alt_names": "evil.example.com"}
        )

    role = f"{LAYOUT.int_mount}/roles/{LAYOUT.role}"
    with pytest.raises(VaultPermissionDenied):
        await workload.read(role)
    with pytest.raises(VaultPermissionDenied):
        await workload.write(role, {"allowed_domains": ["example.com"], "allow_any_name": True})
    with pytest.raises(VaultPermissionDenied):
        await workload.write(f"{LAYOUT.int_mount}/sign-verbatim", {"csr": "x"})
    with pytest.raises(VaultPermissionDenied):  # nor switch the signing issuer
        await workload.write(f"{LAYOUT.int_mount}/config/issuers", {"default": "x"})
    root = hvac.Client(url=openbao.addr, token=openbao.root_token)
    still = root.read(role)["data"]
    assert still["allowed_domains"] == LAYOUT.allowed_domains()
    assert not still["allow_any_name"]


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
