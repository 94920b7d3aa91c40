"""A per-job PKI role deleted out of band is granted again within one resync interval, against
a real OpenBao and with the controller's shipped policy (helm-less-deploy/policies).

The grants remember what Vault holds, so a resync of converged jobs writes nothing. That
memory is trusted for one interval only: the first grant after it LISTs the roles once and
forgets the missing ones, so the job's next reconcile (the periodic resync reaches every job)
writes its role again — not only a controller restart.
"""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest

from controller.runtime.clock import FakeClock
from controller.vault import PkiLayout, VaultClient, VaultConnection, bootstrap_pki
from controller.vault.grants import VaultCertGrants
from devstack.testing import User, injected, running, settings_for, stored, user_job
from devstack.vault import OpenBao
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

POLICY = Path(__file__).resolve().parents[2] / "helm-less-deploy/policies/vault-mesh-controller.hcl"
LAYOUT = PkiLayout()
INTERVAL = 600.0
WEB = ("web.service.consul", "web.service.*.consul")
API = ("api.service.consul", "api.service.*.consul")


def controller_token(bao: OpenBao) -> str:
    """A token holding exactly the shipped controller policy."""
    root = hvac.Client(url=bao.addr, token=bao.root_token)
    root.sys.create_or_update_policy(name="repair-mesh-controller", policy=POLICY.read_text())
    created = root.auth.token.create(
        policies=["repair-mesh-controller"], no_default_policy=True, ttl="10m"
    )
    return str(created["auth"]["client_token"])


async def role_names(root: VaultClient, role: str) -> list[str] | None:
    found = await root.read(f"{LAYOUT.int_mount}/roles/{role}")
    return None if found is None else list(found["data"]["allowed_domains"])


async def test_a_role_deleted_out_of_band_is_granted_again_after_one_interval(
    openbao: OpenBao,
) -> None:
    root = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    await bootstrap_pki(root, LAYOUT)
    clock = FakeClock()
    grants = VaultCertGrants(
        VaultClient(VaultConnection(openbao.addr, controller_token(openbao))),
        LAYOUT,
        verify_interval=INTERVAL,
        clock=clock,
    )
    await grants.grant("mesh.repair.web", WEB)
    await grants.grant("mesh.repair.api", API)
    assert await role_names(root, "mesh.repair.web") == list(WEB)
    # the first grant LISTs once: roles Vault does not hold are written without a read first
    assert (grants.writes, grants.lists) == (2, 1)

    # An operator (or a restore) deletes web's role behind the controller's back.
    await root.delete(f"{LAYOUT.int_mount}/roles/mesh.repair.web")

    # Within the interval, the memory is trusted: resyncs cost nothing, the role stays gone.
    await clock.advance(INTERVAL - 1)
    await grants.grant("mesh.repair.web", WEB)
    assert await role_names(root, "mesh.repair.web") is None
    assert (grants.writes, grants.lists) == (2, 1)

    # The next resync after the interval: one LIST, the missing role forgotten and written.
    await clock.advance(1)
    await grants.grant("mesh.repair.api", API)  # the LIST happens on whichever grant is first
    await grants.grant("mesh.repair.web", WEB)
    assert await role_names(root, "mesh.repair.web") == list(WEB)
    assert grants.repaired == ["mesh.repair.web"]
    assert (grants.writes, grants.lists) == (3, 2)

    # Every other grant of that resync reuses the LIST; api, untouched, is not written.
    for _ in range(5):
        await grants.grant("mesh.repair.api", API)
        await grants.grant("mesh.repair.web", WEB)
    assert (grants.writes, grants.lists) == (3, 2)
    assert await role_names(root, "mesh.repair.api") == list(API)


async def test_a_withdrawn_role_is_not_resurrected_by_the_check(openbao: OpenBao) -> None:
    root = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    await bootstrap_pki(root, LAYOUT)
    clock = FakeClock()
    grants = VaultCertGrants(root, LAYOUT, verify_interval=INTERVAL, clock=clock)
    await grants.grant("mesh.repair.gone", WEB)
    await grants.withdraw("mesh.repair.gone")
    await grants.grant("mesh.repair.kept", API)
    await clock.advance(INTERVAL)
    await grants.grant("mesh.repair.kept", API)
    assert grants.lists == 2 and grants.repaired == []  # the first grant's, the interval's
    assert await role_names(root, "mesh.repair.gone") is None


async def test_the_running_controller_grants_a_deleted_role_again_at_its_next_resync(
    openbao: OpenBao, make_nomad_twin: NomadTwinFactory
) -> None:
    """End to end: the controller's own grants (Vault from its settings), a resync period of
    2 s; the role an operator deletes is back without a restart."""
    root = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    await bootstrap_pki(root, LAYOUT)
    twin = await make_nomad_twin(nodes=1)
    settings = settings_for(
        twin,
        VAULT_ADDR=openbao.addr,
        VAULT_TOKEN=controller_token(openbao),
        MESH_RESYNC_INTERVAL="2s",
    )
    user = User(twin)
    try:
        async with running(settings):
            await user.submit(user_job("shop", {"mesh.tls": "true"}))
            await eventually(lambda: injected(stored(twin, "shop")), what="shop injected")
            names = ["shop.service.consul", "shop.service.*.consul"]
            assert await role_names(root, "mesh.default.shop") == names

            await root.delete(f"{LAYOUT.int_mount}/roles/mesh.default.shop")
            back = await eventually(
                lambda: role_names(root, "mesh.default.shop"), within=15, what="role granted again"
            )
            assert back == names
    finally:
        await user.close()
