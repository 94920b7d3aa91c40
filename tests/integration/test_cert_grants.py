"""The controller keeps each meshed job's certificate grant (its per-job PKI role) in step.

The controller runs in-process against the Nomad twin; its grants are recorded in memory
(devstack.testing.RecordedGrants stands where Vault's roles are: the Vault side is proved
against real OpenBao in test_identity_bound_certs). A grant exists before the injected job is
registered, follows a renamed service, is withdrawn when the job stops being meshed or is
purged, covers a periodic parent's children (they log in as the parent), a job whose ID
cannot name a role is refused with the reason, and so is a declared SAN in the mesh's
namespace that the job does not front (an external one is granted).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from controller.vault import VaultUnavailable
from crds_equivalent.status import ConditionType
from devstack.nomad import NomadTwin
from devstack.testing import (
    RecordedGrants,
    User,
    injected,
    running,
    settings_for,
    stored,
    user_job,
)
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def names(service: str) -> tuple[str, ...]:
    return (f"{service}.service.consul", f"{service}.service.*.consul")


class OrderedGrants(RecordedGrants):
    """Also notes whether Nomad already held an injected version when a role was granted."""

    def __init__(self, twin: NomadTwin) -> None:
        super().__init__()
        self.twin = twin
        self.late: list[str] = []

    async def grant(self, role: str, names: Sequence[str]) -> None:
        job_id = role.split(".", 2)[2]
        job = stored(self.twin, job_id)
        if role not in self.roles and job is not None and injected(job):
            self.late.append(role)
        await super().grant(role, names)


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=2, heartbeat_interval=0.2)


async def delete(twin: NomadTwin, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.delete(f"{twin.url}{path}") as r:
        assert r.status == 200, await r.text()


def renamed(job: dict[str, Any], service: str) -> dict[str, Any]:
    out = copy.deepcopy(job)
    out["TaskGroups"][0]["Services"][0]["Name"] = service
    return out


async def test_grant_precedes_register_follows_renames_and_is_withdrawn(
    twin: NomadTwin, user: User
) -> None:
    grants = OrderedGrants(twin)
    async with running(settings_for(twin), grants=grants):
        spec = user_job("web", {"mesh.tls": "true"})
        await user.submit(spec)
        await eventually(lambda: injected(stored(twin, "web")), what="web injected")
        assert grants.roles == {"mesh.default.web": names("web")}
        assert grants.late == []  # granted before the injected version was registered

        # The user renames the service: the grant follows, the old name is no longer allowed.
        await user.submit(renamed(spec, "www"))
        await eventually(
            lambda: grants.roles.get("mesh.default.web") == names("www"), what="grant renamed"
        )

        # The job stops being meshed: the grant is withdrawn.
        await user.submit(user_job("web", {"mesh.tls": "false"}))
        await eventually(lambda: "mesh.default.web" not in grants.roles, what="withdrawn")
        assert grants.withdrawn == ["mesh.default.web"]

        # Meshed again, then purged: withdrawn again.
        await user.submit(spec)
        await eventually(lambda: "mesh.default.web" in grants.roles, what="granted again")
        await delete(twin, "/v1/job/web?purge=true")
        await eventually(lambda: "mesh.default.web" not in grants.roles, what="purged")


async def test_a_job_id_that_cannot_name_a_role_is_refused_with_the_reason(
    twin: NomadTwin, user: User
) -> None:
    grants = RecordedGrants()
    async with running(settings_for(twin), grants=grants) as (app, _):
        await user.submit(user_job("web-", {"mesh.tls": "true"}))

        async def refusal() -> str | None:
            status = await app.statuses.get("default", "web-")
            cond = status.condition(ConditionType.SPEC_VALID) if status else None
            return cond.message if cond is not None and cond.status == "False" else None

        message = await eventually(refusal, what="SpecValid=False")
        assert "job ID 'web-' cannot name a Vault PKI role" in message
        assert not injected(stored(twin, "web-"))
        assert grants.roles == {}


async def test_a_periodic_parents_children_are_covered_by_the_parents_grant(
    twin: NomadTwin, user: User
) -> None:
    grants = RecordedGrants()
    async with running(settings_for(twin), grants=grants) as (app, _):
        parent = user_job("nightly", {"mesh.tls": "true"})
        parent["Type"] = "batch"
        parent["TaskGroups"][0].pop("Update")
        parent["Periodic"] = {"Enabled": True, "Spec": "0 0 1 1 *", "SpecType": "cron"}
        await user.submit(parent)
        await eventually(lambda: injected(stored(twin, "nightly")), what="parent injected")
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{twin.url}/v1/job/nightly/periodic/force", json=None) as r,
        ):
            assert r.status == 200, await r.text()
        await eventually(
            lambda: any(j.get("ParentID") == "nightly" for j in twin.state.jobs.values()),
            what="a child launched",
        )
        await eventually(
            lambda: app.source.last_index >= twin.state.index and not len(app.queue),
            what="settled",
        )
        # One role, the parent's: a child's identity carries nomad_job_id = the parent's ID.
        assert grants.roles == {"mesh.default.nightly": names("nightly")}


class SealedVault(RecordedGrants):
    """Vault answers nothing until ``unseal``: every grant fails as the adapter's would."""

    def __init__(self) -> None:
        super().__init__()
        self.sealed = True

    async def grant(self, role: str, names: Sequence[str]) -> None:
        if self.sealed:
            raise VaultUnavailable("write pki_int/roles/x: Vault is sealed")
        await super().grant(role, names)


async def test_without_a_grant_nothing_is_registered_and_the_status_names_vault(
    twin: NomadTwin, user: User
) -> None:
    grants = SealedVault()
    async with running(settings_for(twin), grants=grants) as (app, _):
        await user.submit(user_job("late", {"mesh.tls": "true"}))

        async def reason() -> str | None:
            status = await app.statuses.get("default", "late")
            return status.message if status is not None and status.message else None

        message = await eventually(reason, what="a status with a reason")
        assert message.startswith("Vault: the job's certificate names could not be granted")
        assert "Vault is sealed" in message
        assert not injected(stored(twin, "late"))  # never registered without its grant

        grants.sealed = False
        await eventually(lambda: injected(stored(twin, "late")), within=20, what="injected")
        assert grants.roles == {"mesh.default.late": names("late")}


async def test_turning_the_flag_off_on_the_injected_job_withdraws_the_grant(
    twin: NomadTwin, user: User
) -> None:
    grants = RecordedGrants()
    async with running(settings_for(twin), grants=grants) as (app, _):
        await user.submit(user_job("shop", {"mesh.tls": "true"}))
        await eventually(lambda: injected(stored(twin, "shop")), what="shop injected")
        assert "mesh.default.shop" in grants.roles

        # The user edits the stored, injected job: the controller un-injects it (Remove).
        edited = copy.deepcopy(stored(twin, "shop"))
        assert edited is not None
        edited["Meta"]["mesh.tls"] = "false"
        await user.submit(edited)
        await eventually(lambda: not injected(stored(twin, "shop")), what="un-injected")
        await eventually(lambda: grants.withdrawn == ["mesh.default.shop"], what="withdrawn")
        assert app.reconciler.writes["remove"] == 1


async def test_declared_sans_are_granted_outside_the_mesh_and_refused_inside_it(
    twin: NomadTwin, user: User
) -> None:
    grants = RecordedGrants()
    async with running(settings_for(twin), grants=grants) as (app, _):
        await user.submit(
            user_job("shop", {"mesh.tls": "true", "mesh.tls.sans": "shop.example.com"})
        )
        await eventually(lambda: injected(stored(twin, "shop")), what="shop injected")
        assert grants.roles == {"mesh.default.shop": (*names("shop"), "shop.example.com")}

        # Another service's mesh name: SpecValid=False naming it, the job and grant untouched.
        await user.submit(
            user_job("shop", {"mesh.tls": "true", "mesh.tls.sans": "billing.service.consul"})
        )

        async def refusal() -> str | None:
            status = await app.statuses.get("default", "shop")
            cond = status.condition(ConditionType.SPEC_VALID) if status else None
            return cond.message if cond is not None and cond.status == "False" else None

        message = await eventually(refusal, what="SpecValid=False")
        assert message.startswith(
            'group "app": meta "mesh.tls.sans" names "billing.service.consul": it is in the '
            "mesh's own namespace"
        )
        assert grants.roles == {"mesh.default.shop": (*names("shop"), "shop.example.com")}
