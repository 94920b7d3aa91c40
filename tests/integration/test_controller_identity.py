"""``controllerctl install``'s JWT auth role for the controller's own workload identity, against
a real OpenBao: written once, then found unchanged (Vault reads back what was written), and
only reported, never invented, when the cluster has no JWT auth method for Nomad."""

from __future__ import annotations

import uuid

import pytest

from controller.deploy.controller_identity import CONTROLLER_ROLE, ensure_controller_role
from controller.deploy.steps import InstallReport, Outcome
from controller.vault import CONTROLLER_POLICY, VaultClient, VaultConnection
from devstack.vault import OpenBao

pytestmark = pytest.mark.timeout(60)


async def test_the_role_is_written_once_and_binds_the_controller_job(openbao: OpenBao) -> None:
    vault = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    mount = f"jwt-{uuid.uuid4().hex[:8]}"  # this test's own mount on the shared OpenBao
    await vault.write(f"sys/auth/{mount}", {"type": "jwt"})
    first = InstallReport()
    await ensure_controller_role(vault, "platform", first, mount=mount)
    assert [s.outcome for s in first.steps] == [Outcome.CHANGED]

    role = ((await vault.read(f"auth/{mount}/role/{CONTROLLER_ROLE}")) or {})["data"]
    assert role["bound_claims"] == {
        "nomad_namespace": "platform",
        "nomad_job_id": "mesh-controller",
    }
    assert role["token_policies"] == [CONTROLLER_POLICY]
    assert role["token_period"] > 0

    again = InstallReport()
    await ensure_controller_role(vault, "platform", again, mount=mount)
    assert [s.outcome for s in again.steps] == [Outcome.UNCHANGED]

    moved = InstallReport()  # another namespace: the binding is updated
    await ensure_controller_role(vault, "default", moved, mount=mount)
    assert [s.outcome for s in moved.steps] == [Outcome.CHANGED]


async def test_without_a_jwt_auth_method_nothing_is_written(openbao: OpenBao) -> None:
    vault = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    report = InstallReport()
    await ensure_controller_role(vault, "default", report, mount="jwt-absent")
    assert [s.outcome for s in report.steps] == [Outcome.UNCHANGED]
    assert "no JWT auth method at jwt-absent/" in report.steps[0].what
