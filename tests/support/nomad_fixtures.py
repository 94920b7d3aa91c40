"""Our Nomad adapter against the in-process Nomad twin: a small job and two fixtures.

A pytest plugin (tests/conftest.py loads it), so the adapter and status-store tests ask for
``nomad`` or ``nomad_twin`` by name instead of importing and re-exporting the fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from controller.nomad.client import NomadClient
from devstack.nomad.server import NomadTwin
from tests.support.twins import NomadTwinFactory


def job_spec(
    job_id: str,
    *,
    meta: dict[str, str] | None = None,
    group_meta: dict[str, str] | None = None,
    tasks: tuple[str, ...] = ("app",),
    namespace: str = "default",
) -> dict[str, Any]:
    """A small service job in Nomad's JSON API form (simulated driver: no process runs)."""
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": namespace,
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": meta,
        "TaskGroups": [
            {
                "Name": "app",
                "Count": 1,
                "Meta": group_meta,
                "Tasks": [
                    {
                        "Name": name,
                        "Driver": "docker",
                        "Config": {"image": "example/app:1"},
                        "Resources": {"CPU": 50, "MemoryMB": 32},
                    }
                    for name in tasks
                ],
            }
        ],
    }


@pytest_asyncio.fixture
async def nomad_twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    """One Nomad twin with a single simulated node."""
    return await make_nomad_twin(nodes=1)


@pytest_asyncio.fixture
async def nomad(nomad_twin: NomadTwin) -> AsyncIterator[NomadClient]:
    """Our adapter's client on ``nomad_twin``, with a retry budget that rides out its faults."""
    client = NomadClient(nomad_twin.url, retry_budget=2.0)
    try:
        yield client
    finally:
        await client.close()
