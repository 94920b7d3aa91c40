"""The controller against a misbehaving Nomad twin: dropped streams, overflowing event buffers,
5xx storms. It must converge anyway (level-triggered: re-LIST, re-read, retry with backoff)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from controller.app import App
from devstack.nomad import NomadTwin
from devstack.nomad.jobsvc import register
from devstack.testing import (
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
    return await make_nomad_twin(nodes=2, heartbeat_interval=0.2, event_buffer_size=10)


def submit_now(twin: NomadTwin, job: dict[str, Any]) -> None:
    """Register straight into the twin's state, without yielding to the event loop: the
    controller cannot read a single event between two such calls."""
    register(twin.state, twin.scheduler, job, "default", False, 0)


def metric(app: App, family: str, **labels: str) -> float:
    return app.registry.get_sample_value(family, labels) or 0.0


async def test_changes_made_while_the_stream_keeps_dropping_converge_through_relist(
    twin: NomadTwin,
) -> None:
    async with running(settings_for(twin)) as (app, _):
        twin.faults.stream_drop_after = 1  # every connection dies after one frame
        for i in range(6):
            submit_now(twin, user_job(f"svc{i}", {"mesh.tls": "true"}))
            for rev in range(3):  # busy-work so the buffer (10) forgets the registrations
                submit_now(twin, user_job("noise", {"rev": f"{i}.{rev}"}))
        await eventually(lambda: metric(app, "nomad_event_stream_reconnects_total") >= 2)
        twin.faults.stream_drop_after = 0
        for i in range(6):
            await eventually(lambda i=i: injected(stored(twin, f"svc{i}")), what=f"svc{i}")
            assert versions(twin, f"svc{i}") == [0, 1]
        assert not injected(stored(twin, "noise"))


async def test_event_buffer_overflow_still_converges(twin: NomadTwin) -> None:
    async with running(settings_for(twin)) as (app, _):
        lists_before = app.source.lists
        # 50 changes in one go against a buffer of 10: the subscriber falls out of the buffer.
        for i in range(10):
            submit_now(twin, user_job(f"bulk{i}", {"mesh.tls": "true"}))
        for rev in range(40):
            submit_now(twin, user_job("noise", {"rev": str(rev)}))
        for i in range(10):
            await eventually(lambda i=i: injected(stored(twin, f"bulk{i}")), what=f"bulk{i}")
        assert app.source.lists > lists_before  # recovered by a LIST, not by replay
        assert metric(app, "nomad_event_stream_reconnects_total") >= 1
        assert all(versions(twin, f"bulk{i}") == [0, 1] for i in range(10))


async def test_a_5xx_storm_backs_off_then_recovers(twin: NomadTwin) -> None:
    key = ("default", "storm")
    async with running(settings_for(twin)) as (app, _):
        twin.faults.update({"error_ratio": 1.0, "error_path_prefix": "/v1/job/"})
        submit_now(twin, user_job("storm", {"mesh.tls": "true"}))
        await eventually(lambda: app.queue.num_requeues(key) >= 3, what="retries with backoff")
        errors = metric(app, "controller_reconcile_total", controller="mesh", result="error")
        assert errors >= 3
        assert metric(app, "workqueue_retries_total", name="mesh") >= 3
        assert versions(twin, "storm") == [0]  # nothing was written during the storm

        twin.faults.reset()
        await eventually(lambda: injected(stored(twin, "storm")), what="recovered")
        await eventually(lambda: app.queue.num_requeues(key) == 0, what="backoff forgotten")
        assert versions(twin, "storm") == [0, 1]
