"""Contract tests: what the twin's Job and Deployment events carry, as the job cache reads them.

``nomad/state/events.go`` ``eventFromChange``: a Job event carries the job as written (a stop
writes the job, Stop set, at the event's index) or, when the job was deleted, as it was before
(``change.Before``: last written at an older index; Nomad 2.0 adds ``Deleted``, nomad#27614, the
1.10 the twin follows does not); a Deployment event carries the whole deployment with the job's
ID as its filter key. The cache tells a purge from a stop by that index and keeps deployments
from these payloads, so both are pinned here."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin
from tests.support.twins import NomadTwinFactory

pytestmark = pytest.mark.timeout(60)


def job(job_id: str) -> dict[str, Any]:
    return {
        "Job": {
            "ID": job_id,
            "TaskGroups": [
                {
                    "Name": "app",
                    "Update": {"MinHealthyTime": 0},
                    "Tasks": [{"Name": "srv", "Driver": "exec"}],
                }
            ],
        }
    }


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(heartbeat_interval=0.2)


async def events_until(
    resp: aiohttp.ClientResponse, done: Any, limit: float = 10
) -> list[dict[str, Any]]:
    """Events read from the stream until ``done(events)`` holds."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(limit):
        while not done(out):
            frame = json.loads(await resp.content.readline())
            out.extend(frame.get("Events") or [])
    return out


async def test_a_stop_carries_the_written_job_and_a_purge_the_job_as_it_was(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await http.post(f"{twin.url}/v1/jobs", json=job("web"))
    async with http.get(f"{twin.url}/v1/event/stream?index=0&topic=Job:web") as resp:
        await events_until(resp, lambda ev: any(e["Type"] == "JobRegistered" for e in ev))
        await http.delete(f"{twin.url}/v1/job/web")
        stop = await events_until(resp, lambda ev: any(e["Type"] == "JobDeregistered" for e in ev))
        await http.delete(f"{twin.url}/v1/job/web?purge=true")
        purge = await events_until(resp, lambda ev: any(e["Type"] == "JobDeregistered" for e in ev))
    stopped = next(e for e in stop if e["Type"] == "JobDeregistered")
    assert stopped["Payload"]["Job"]["Stop"] is True
    assert stopped["Payload"]["Job"]["ModifyIndex"] == stopped["Index"]
    purged = next(e for e in purge if e["Type"] == "JobDeregistered")
    assert purged["Payload"]["Job"]["ModifyIndex"] < purged["Index"]
    assert "Deleted" not in purged["Payload"]
    async with http.get(f"{twin.url}/v1/job/web") as gone:
        assert gone.status == 404


async def test_a_deployment_event_carries_the_whole_deployment_keyed_by_its_job(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{twin.url}/v1/event/stream?index=0&topic=Deployment") as resp:
        await http.post(f"{twin.url}/v1/jobs", json=job("api"))
        events = await events_until(resp, lambda ev: bool(ev))
    event = events[0]
    assert event["FilterKeys"] == ["api"]
    async with http.get(f"{twin.url}/v1/deployment/{event['Key']}") as read:
        stored = await read.json()
    assert set(event["Payload"]["Deployment"]) == set(stored)
    assert event["Payload"]["Deployment"]["JobID"] == "api"
