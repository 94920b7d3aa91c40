"""The leader lock keeps its lease while reconcile traffic saturates the shared Nomad client.

Renewals have their own client (own session, own connection, no in-flight bound); the shared
client holds at most MESH_NOMAD_CONCURRENCY requests open. Here that bound is held by blocking
queries the twin parks (as Nomad does until the index moves), so every other request of the
shared client queues; the lock must still renew, and Nomad must still show it held by us.
"""

from __future__ import annotations

import asyncio

import pytest

from controller.nomad.client import NomadClient, NomadResponse
from controller.nomad.lock import NomadVariableLock
from controller.nomad.variables import Variable, var_url
from crds_equivalent.keys import VAR_LEADER
from devstack.nomad import NomadTwin
from devstack.testing import running, settings_for
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

PARKED = 3  # one more than the bound: the last one waits for a slot


def park(client: NomadClient, index: int) -> list[asyncio.Task[NomadResponse]]:
    """Blocking queries on the jobs table that no job change will release."""
    return [
        asyncio.create_task(
            client.request(
                "GET", "/v1/jobs", params={"index": index, "wait": "60s"}, call_timeout=90
            )
        )
        for _ in range(PARKED)
    ]


async def lock_holder(twin: NomadTwin) -> str | None:
    async with NomadClient(twin.url) as reader:
        resp = await reader.request("GET", var_url(VAR_LEADER))
    return Variable.from_wire(resp.body or {}).lock_id


async def test_a_renew_succeeds_while_the_shared_client_is_saturated(
    make_nomad_twin: NomadTwinFactory,
) -> None:
    twin = await make_nomad_twin(nodes=1)
    async with NomadClient(twin.url, max_in_flight=2) as shared, NomadClient(twin.url) as own:
        lock = NomadVariableLock(own, path=VAR_LEADER, identity="leader")
        assert await lock.acquire()
        parked = park(shared, (await shared.request("GET", "/v1/jobs")).index or 1)
        await eventually(lambda: shared.slots.in_flight == 2 and shared.slots.waiting == 1)

        assert await lock.renew()
        assert await lock_holder(twin) == lock.lock_id
        assert not any(t.done() for t in parked)  # the shared client is still saturated
        for task in parked:
            task.cancel()
        await asyncio.gather(*parked, return_exceptions=True)


async def test_the_controller_stays_leader_while_its_nomad_client_is_saturated(
    make_nomad_twin: NomadTwinFactory,
) -> None:
    twin = await make_nomad_twin(nodes=1)
    settings = settings_for(
        twin, MESH_NOMAD_CONCURRENCY="2", MESH_LEADER_TTL="10s", MESH_LEADER_RENEW="500ms"
    )
    async with running(settings) as (app, task):
        renews = app.registry.get_sample_value("leader_renew_duration_seconds_count") or 0.0
        parked = park(app.nomad, (await app.nomad.request("GET", "/v1/jobs")).index or 1)
        await eventually(lambda: app.nomad.slots.waiting >= 1, what="the shared client full")

        def renewed_twice() -> bool:
            count = app.registry.get_sample_value("leader_renew_duration_seconds_count") or 0.0
            return count >= renews + 2

        await eventually(renewed_twice, within=15, what="two renewals behind the parked calls")
        assert app.elector.is_leader and not task.done()
        assert await lock_holder(twin) == app.lock.lock_id
        assert app.nomad.slots.in_flight == 2 and not any(t.done() for t in parked)
        assert app.registry.get_sample_value("nomad_requests_in_flight") == 2
        assert (app.registry.get_sample_value("nomad_requests_waiting") or 0) >= 1
        assert app.registry.get_sample_value("leader_lost_total") == 0.0
        for t in parked:
            t.cancel()
        await asyncio.gather(*parked, return_exceptions=True)
