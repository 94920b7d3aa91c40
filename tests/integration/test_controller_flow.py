"""The controller in-process against the Nomad twin: what a user and CI see happen to jobs."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from controller.app import App
from crds_equivalent import keys
from crds_equivalent.status import ConditionStatus, ConditionType, Phase
from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.testing import (
    User,
    injected,
    phase,
    running,
    same_spec,
    settings_for,
    stored,
    user_job,
    versions,
)
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=2, heartbeat_interval=0.2)


def unchecked_job(job_id: str, meta: dict[str, str], *, count: int = 1) -> dict[str, Any]:
    """``user_job`` without its Consul check. This harness runs no Consul, and Nomad judges a
    deployment by the group's Consul checks: with one, the deployment could never succeed here,
    and the controller rightly never calls the version rolled out. Without one, Nomad judges it
    by its tasks, as it does for a job with no checks."""
    job = user_job(job_id, meta, count=count)
    for group in job["TaskGroups"]:
        for service in group.get("Services") or []:
            service.pop("Checks", None)
    return job


async def rolled_out(app: App, job_id: str) -> bool:
    """As far as this harness can verify: injected, and Nomad's deployment of the injected
    version succeeded. This stack has neither Consul nor Vault, so the health conditions are
    Unknown (a Consul service with no Consul configured is ConsulNotConfigured) and the job is
    never claimed Ready: it stays Injected (Ready needs them; see test_phase_sequence)."""
    status = await app.statuses.get("default", job_id)
    if status is None:
        return False
    wanted = (ConditionType.SIDECAR_INJECTED, ConditionType.ROLLED_OUT)
    return status.phase is Phase.INJECTED and all(
        (c := status.condition(t)) is not None and c.status == ConditionStatus.TRUE for t in wanted
    )


async def settled(app: App, twin: NomadTwin, job_id: str) -> bool:
    """The controller has seen the stored job's latest change and has nothing left to do."""
    job = stored(twin, job_id)
    return (
        job is not None
        and app.source.last_index >= job["ModifyIndex"]
        and len(app.queue) == 0
        and not app.queue.in_flight
    )


async def test_meshed_job_is_injected_and_ready_and_ci_resubmit_is_injected_again(
    twin: NomadTwin, user: User
) -> None:
    async with running(settings_for(twin)) as (app, _):
        spec = unchecked_job("web", {"mesh.tls": "true"})
        await user.submit(spec)
        await eventually(lambda: injected(stored(twin, "web")), what="web injected")
        await eventually(lambda: rolled_out(app, "web"), what="web rolled out")
        assert versions(twin, "web") == [0, 1]

        # CI deploys the un-injected spec again: a new user version, injected once more.
        await user.submit(spec)
        await eventually(lambda: versions(twin, "web") == [0, 1, 2, 3], what="re-injection")
        assert injected(stored(twin, "web"))
        await eventually(lambda: rolled_out(app, "web"), what="rolled out again")
        assert app.reconciler.writes["apply"] == 2


async def test_our_own_register_event_is_a_no_op(twin: NomadTwin, user: User) -> None:
    async with running(settings_for(twin)) as (app, _):
        await user.submit(unchecked_job("api", {"mesh.tls": "true"}))
        await user.submit(user_job("batchy", {}))  # not meshed: never touched
        await eventually(lambda: rolled_out(app, "api"), what="api rolled out")
        await eventually(lambda: settled(app, twin, "api"), what="our event processed")
        assert versions(twin, "api") == [0, 1]  # one register for one user change
        assert versions(twin, "batchy") == [0]
        assert app.reconciler.writes == {"apply": 1}
        assert await app.statuses.get("default", "batchy") is None


async def test_removing_the_flag_gives_the_users_job_back(twin: NomadTwin, user: User) -> None:
    async with running(settings_for(twin)) as (app, _):
        await user.submit(user_job("shop", {"mesh.tls": "true", "team": "payments"}))
        await eventually(lambda: injected(stored(twin, "shop")), what="shop injected")

        # The user edits the stored (injected) job and drops the flag.
        edited = copy.deepcopy(await user.get("shop"))
        del edited["Meta"][keys.MESH_TLS]
        await user.submit(edited)

        await eventually(lambda: versions(twin, "shop")[-1:] == [3], what="removal written")
        # Exactly the user's job: the edit carried the constraints Nomad's server implied
        # because of the sidecar (its Vault block, SIGHUP/SIGQUIT), and the removal takes them
        # back, since the undo record knows the group had none before injection.
        assert edited["TaskGroups"][0]["Constraints"]  # (so taking them back is not a no-op)
        wanted = user_job("shop", {"team": "payments"})
        await eventually(
            lambda: same_spec(stored(twin, "shop") or {}, wanted), what="user's job restored"
        )
        await eventually(lambda: _is(phase(app, "shop"), "Removed"), what="status Removed")
        assert versions(twin, "shop") == [0, 1, 2, 3]
        assert app.reconciler.writes == {"apply": 1, "remove": 1}


async def test_invalid_meta_leaves_the_job_untouched(twin: NomadTwin, user: User) -> None:
    async with running(settings_for(twin)) as (app, _):
        spec = user_job("bad", {"mesh.tls": "true", "mesh.tls.mode": "loose"})
        await user.submit(spec)
        await eventually(lambda: _is(phase(app, "bad"), "Invalid"), what="status Invalid")
        status = await app.statuses.get("default", "bad")
        assert status is not None
        assert "mesh.tls.mode" in status.message
        assert "loose" in status.message
        await eventually(lambda: settled(app, twin, "bad"), what="settled")
        assert versions(twin, "bad") == [0]
        assert same_spec(stored(twin, "bad") or {}, spec)


class RacingJobs:
    """Nomad as the reconciler sees it, except that the user registers a change of their own
    between our read and our write — the race EnforceIndex exists for."""

    def __init__(self, inner: Any, user: User, change: dict[str, Any]) -> None:
        self.inner = inner
        self.user = user
        self.change: dict[str, Any] | None = change
        self.lost: list[Exception] = []  # what our losing write raised, as Nomad worded it

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def register_job(self, job: dict[str, Any], *, enforce_index: int | None) -> Any:
        if self.change is not None:
            change, self.change = self.change, None
            await self.user.submit(change)
            try:
                return await self.inner.register_job(job, enforce_index=enforce_index)
            except Exception as exc:
                self.lost.append(exc)
                raise
        return await self.inner.register_job(job, enforce_index=enforce_index)


@pytest.mark.parametrize("forwarded", [False, True], ids=["leader", "forwarded-rpc"])
async def test_a_user_update_during_our_register_wins_and_is_injected(
    twin: NomadTwin, user: User, forwarded: bool
) -> None:
    """Also through an agent that forwards the write to the leader (the controller's usual
    Nomad address is its node's client agent): the fence failure then reads
    ``rpc error: Enforcing job modify index ...`` and must still be a lost race, not an error."""
    twin.faults.forwarded_rpc = forwarded
    spec = unchecked_job("cart", {"mesh.tls": "true"})
    newer = unchecked_job("cart", {"mesh.tls": "true", "release": "2"}, count=2)
    for job in (spec, newer):  # no Consul in this stack: checks could never be seen
        job["TaskGroups"][0]["Update"]["HealthCheck"] = "task_states"
    async with running(settings_for(twin)) as (app, _):
        racing = RacingJobs(app.reconciler.jobs, user, newer)
        app.reconciler.jobs = racing
        await user.submit(spec)
        await eventually(lambda: injected(stored(twin, "cart")), what="cart injected")
        job = stored(twin, "cart")
        assert job is not None
        assert job["Meta"]["release"] == "2"  # the user's change was kept...
        assert job["TaskGroups"][0]["Count"] == 2
        assert versions(twin, "cart") == [0, 1, 2]  # ...and our stale write never landed
        # the lost race was retried through the key's backoff, not counted as a failure
        requeues = {"controller": "mesh", "result": "requeue"}
        assert (app.registry.get_sample_value("controller_reconcile_total", requeues) or 0) >= 1
        errors = {"controller": "mesh", "result": "error"}
        assert (app.registry.get_sample_value("controller_reconcile_total", errors) or 0) == 0
        assert [type(e).__name__ for e in racing.lost] == ["Conflict"]
        assert (
            str(racing.lost[0])
            .split(": 500 ", 1)[1]
            .startswith(("rpc error: " if forwarded else "") + "Enforcing job modify index ")
        )
        await eventually(lambda: rolled_out(app, "cart"), what="cart rolled out")


async def test_with_acls_the_token_works_and_is_never_shown() -> None:
    twin = await start_nomad_twin(nodes=1, acl=True, heartbeat_interval=0.2)
    token = twin.management_token
    assert token
    user = User(twin, token)
    try:
        async with running(settings_for(twin, token)) as (app, _):
            await user.submit(user_job("secure", {"mesh.tls": "true"}))
            await eventually(lambda: injected(stored(twin, "secure")), what="injected")
            async with aiohttp.ClientSession() as session:
                for path in ("/status", "/metrics", "/healthz", "/readyz"):
                    async with session.get(app.http.url + path) as resp:
                        assert resp.status == 200, path
                        assert token not in await resp.text()
            assert token not in repr(app.settings)
    finally:
        await user.close()
        await twin.stop()


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)
