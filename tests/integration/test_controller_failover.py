"""Two controllers, one lock: the leader that cannot renew exits non-zero, the standby takes over.

Lease time is on one FakeClock shared by both controllers and by the twin's Variables (TTL and
LockDelay), so 15 s leases expire without waiting 15 s; Nomad I/O still happens for real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest
import pytest_asyncio

from controller.app import App
from controller.runtime import FakeClock
from crds_equivalent.keys import VAR_LEADER
from devstack.nomad import NomadTwin
from devstack.testing import (
    User,
    injected,
    running,
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


async def drive(clock: FakeClock, until: Callable[[], bool], *, what: str) -> None:
    """Move lease time one second at a time (letting real I/O finish in between)."""
    deadline = time.monotonic() + 30
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen")
        await clock.advance(1.0)
        await asyncio.sleep(0.02)


def lock_holder(twin: NomadTwin) -> str | None:
    var = twin.state.variables.get(("default", VAR_LEADER))
    if not var or not var.get("Lock"):
        return None
    return str((var.get("Items") or {}).get("identity"))


async def status_of(app: App) -> dict[str, object]:
    async with aiohttp.ClientSession() as s, s.get(app.http.url + "/status") as r:
        body: dict[str, object] = await r.json()
        return body


async def test_leader_that_cannot_renew_exits_and_the_standby_takes_over(twin: NomadTwin) -> None:
    clock = FakeClock(start=time.monotonic())
    twin.variables.use_clock(clock.monotonic)
    settings = settings_for(twin, MESH_HEARTBEAT_TIMEOUT="10m")  # no watchdog on lease time
    user = User(twin)
    try:
        async with (
            running(settings, clock=clock, identity="ctl-a") as (a, a_task),
            running(settings, clock=clock, identity="ctl-b", wait_synced=False) as (b, b_task),
        ):
            assert lock_holder(twin) == "ctl-a"
            assert a.elector.is_leader
            assert not b.elector.is_leader
            leader = (await status_of(b))["leader"]
            assert isinstance(leader, dict)
            assert leader["identity"] == "ctl-a"  # the standby knows who leads

            await user.submit(user_job("first", {"mesh.tls": "true"}))
            await eventually(lambda: injected(stored(twin, "first")), what="first injected")

            # Nomad stops answering a's renewals (the lock path 500s for everyone).
            twin.faults.update({"error_ratio": 1.0, "error_path_prefix": f"/v1/var/{VAR_LEADER}"})
            await drive(clock, a_task.done, what="a giving up")
            assert a_task.result() == 1  # exit non-zero: the supervisor restarts it
            twin.faults.reset()

            # b gets the lock once the TTL and then the LockDelay have passed.
            await drive(clock, lambda: b.elector.is_leader, what="b elected")
            await eventually(b.source.synced.is_set, what="b synced")
            assert lock_holder(twin) == "ctl-b"

            await user.submit(user_job("second", {"mesh.tls": "true"}))
            await eventually(lambda: injected(stored(twin, "second")), what="second injected")
            assert versions(twin, "first") == [0, 1]  # b's LIST found nothing left to do
            assert b.reconciler.writes == {"apply": 1}
            assert not b_task.done()
    finally:
        await user.close()
