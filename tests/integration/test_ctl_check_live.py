"""controllerctl check against the twins, a real OpenBao and the real controller (for /status)."""

from __future__ import annotations

import re

import hvac
import pytest

from controller.vault import (
    create_intermediate,
    default_issuer_id,
    set_default_issuer,
)
from controller.vault.policies import controller_policy
from controller.vault.workload_auth import JWT_MOUNT, JWT_ROLE
from devstack.testing import running, settings_for
from devstack.vault import OpenBao
from tests.support.ctl_stack import INT_MOUNT, LAYOUT, ROOT_MOUNT, stack

pytestmark = pytest.mark.timeout(60)


def marks(output: str) -> list[str]:
    """The mark of every check line (the closing verdict line excluded)."""
    return [mark for mark, _ in checked(output)]


def checked(output: str) -> list[tuple[str, int]]:
    lines = output.splitlines()
    return [
        (line[0], i)
        for i, line in enumerate(lines)
        if line[:1] in ("✔", "×", "‼") and "(exit " not in line
    ]


def partial_token(bao: OpenBao) -> str:
    """A token whose policy is the controller's, except that it may not switch the default
    issuer (``config/issuers`` read-only)."""
    text = controller_policy(LAYOUT.policy_paths()).replace(
        f'path "{INT_MOUNT}/config/issuers" {{\n  capabilities = ["read", "update"]',
        f'path "{INT_MOUNT}/config/issuers" {{\n  capabilities = ["read"]',
    )
    assert text != controller_policy(LAYOUT.policy_paths())
    root = hvac.Client(url=bao.addr, token=bao.root_token)
    root.sys.create_or_update_policy(name="ctl-check-partial", policy=text)
    created = root.auth.token.create(policies=["ctl-check-partial"], ttl="10m")
    return str(created["auth"]["client_token"])


async def test_check_healthy_then_missing_capability_then_short_intermediate(
    openbao: OpenBao,
) -> None:
    async with (
        stack(openbao, heartbeat=0.2) as s,
        running(settings_for(s.nomad)) as (app, _),
    ):
        status_url = app.http.url
        pre = await s.ctl("check", "--pre")
        assert pre.exit_code == 0, pre.output
        assert set(marks(pre.output)) == {"✔"}
        assert "Vault token has the capabilities the install needs" in pre.output

        healthy = await s.ctl("check", MESH_STATUS_URL=status_url)
        assert healthy.exit_code == 0, healthy.output
        assert set(marks(healthy.output)) == {"✔"}, healthy.output
        for needle in (
            "✔ Nomad is at least 1.7 (Variable locks for leader election): Nomad 1.10.5",
            f"✔ intermediate is issued by the root of {ROOT_MOUNT}/",
            "✔ a controller leads and renews its lock",
            "✔ the leader's event stream is recent: at index",
            "✔ the controller's own Vault token has not expired: no expiry",  # a root token
        ):
            assert needle in healthy.output

        # A Vault token without one capability the controller needs.
        lacking = await s.ctl(
            "check", MESH_STATUS_URL=status_url, VAULT_TOKEN=partial_token(openbao)
        )
        assert lacking.exit_code == 1
        lines = lacking.output.splitlines()
        failed = [i for mark, i in checked(lacking.output) if mark == "×"]
        assert len(failed) == 1, lacking.output
        assert lines[failed[0]].endswith(f"missing {INT_MOUNT}/config/issuers: update")
        assert lines[failed[0] + 1].startswith("    hint: attach the policy the controller needs")

        # An intermediate that expires in 10 days becomes the default issuer.
        previous = await default_issuer_id(s.vault, INT_MOUNT)
        short = await create_intermediate(
            s.vault,
            root_mount=ROOT_MOUNT,
            int_mount=INT_MOUNT,
            common_name="ctl short-lived intermediate",
            ttl="240h",
        )
        await set_default_issuer(s.vault, INT_MOUNT, short)
        try:
            expiring = await s.ctl("check", MESH_STATUS_URL=status_url)
        finally:
            await set_default_issuer(s.vault, INT_MOUNT, previous)
        assert expiring.exit_code == 1
        lines = expiring.output.splitlines()
        [index] = [i for mark, i in checked(expiring.output) if mark == "×"]
        assert f"intermediate CA ({INT_MOUNT}/, issuer {short})" in lines[index]
        assert "is valid for at least 30 days" in lines[index] and "9d23h left" in lines[index]
        assert "controllerctl rotate-ca" in lines[index + 1]


async def test_check_names_a_missing_workload_role_and_a_drifted_workload_policy(
    openbao: OpenBao,
) -> None:
    root = hvac.Client(url=openbao.addr, token=openbao.root_token)
    role_path = f"auth/{JWT_MOUNT}/role/{JWT_ROLE}"
    async with stack(openbao) as s:
        healthy = await s.ctl("check")
        assert workload_lines(healthy.output) == [
            f"✔ JWT auth method {JWT_MOUNT}/ exists and can verify Nomad's identities: accessor "
            f"{accessor(healthy.output)}; {s.nomad.url}/.well-known/jwks.json",
            f"✔ JWT role {role_path} is the mesh's: bound audience vault.io; user_claim /sub; "
            "policy mesh-workload",
            "✔ Vault policy mesh-workload is the shipped one (its own job's role only)",
        ], healthy.output

        # The role goes: no sidecar can log in, and check says which role and why.
        saved = root.read(role_path)["data"]
        root.delete(role_path)
        # The policy is edited by hand to reach every job's role.
        policy = root.sys.read_policy(name="mesh-workload")["data"]["rules"]
        widened = re.sub(r'issue/mesh\.[^"]*"', 'issue/mesh.*"', policy)
        assert widened != policy
        root.sys.create_or_update_policy(name="mesh-workload", policy=widened)
        try:
            broken = await s.ctl("check")
        finally:
            root.write(role_path, **saved)
            root.sys.create_or_update_policy(name="mesh-workload", policy=policy)
        assert broken.exit_code == 1, broken.output
        failed = [line for line in workload_lines(broken.output) if line.startswith("×")]
        assert failed == [
            f"× JWT role {role_path} is the mesh's: no such role: sidecars (vault.role = "
            "'mesh-workload') cannot log in, so get no leaf",
            "× Vault policy mesh-workload is the shipped one (its own job's role only): differs "
            f"from what the bootstrap writes for {INT_MOUNT}/ and accessor "
            f"{accessor(healthy.output)}: `vault policy read mesh-workload` to see it",
        ], broken.output
        assert "hint: run `controllerctl bootstrap-pki` (idempotent)" in broken.output

        # Back as the bootstrap wrote them: all green again.
        again = await s.ctl("check")
        assert workload_lines(again.output) == workload_lines(healthy.output)


def workload_lines(output: str) -> list[str]:
    """The check lines of the "Vault workload identity" section (no controller runs here, so
    the Controller section fails in this test and is left out)."""
    section = output.split("Vault workload identity\n", 1)[1].split("\n\n", 1)[0]
    return [line for line in section.splitlines() if line[:1] in ("✔", "×", "‼")]


def accessor(output: str) -> str:
    match = re.search(r"accessor (auth_jwt_\w+)", output)
    assert match, output
    return match.group(1)
