"""Shared helpers for our Nomad adapter tests against the in-process Nomad twin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from controller.nomad.client import NomadClient
from devstack.nomad.server import NomadTwin, start_nomad_twin


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
async def nomad_twin() -> AsyncIterator[NomadTwin]:
    twin = await start_nomad_twin(nodes=1)
    try:
        yield twin
    finally:
        await twin.stop()


@pytest_asyncio.fixture
async def nomad(nomad_twin: NomadTwin) -> AsyncIterator[NomadClient]:
    client = NomadClient(nomad_twin.url, retry_budget=2.0)
    try:
        yield client
    finally:
        await client.close()
