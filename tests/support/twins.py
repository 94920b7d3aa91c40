"""The Nomad and Consul twin fixtures, as factories (a pytest plugin; tests/conftest.py loads it),
and a raw HTTP session for the tests that speak the twins' wire API directly.

Each module wants its twin with its own options (nodes, ACLs, heartbeat, check runner), so the
fixture hands out a ``start(**options)`` function instead of one fixed twin. Whatever a test
started is stopped when it ends, in reverse order, even when the test already stopped it (a
twin's ``stop`` is idempotent) or another stop fails.

    @pytest_asyncio.fixture
    async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
        return await make_nomad_twin(nodes=2, heartbeat_interval=0.2)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
import pytest_asyncio

from devstack.consul.server import ConsulTwin, start_consul_twin
from devstack.nomad.server import NomadTwin, start_nomad_twin
from devstack.testing import User


class NomadTwinFactory(Protocol):
    async def __call__(self, **options: Any) -> NomadTwin: ...


class ConsulTwinFactory(Protocol):
    async def __call__(self, **options: Any) -> ConsulTwin: ...


@pytest_asyncio.fixture
async def make_nomad_twin() -> AsyncIterator[NomadTwinFactory]:
    """Start Nomad twins with ``devstack.nomad.server.start_nomad_twin``'s options."""
    async with contextlib.AsyncExitStack() as started:

        async def start(**options: Any) -> NomadTwin:
            twin = await start_nomad_twin(**options)
            started.push_async_callback(twin.stop)
            return twin

        yield start


@pytest_asyncio.fixture
async def make_consul_twin() -> AsyncIterator[ConsulTwinFactory]:
    """Start Consul twins with ``devstack.consul.server.start_consul_twin``'s options."""
    async with contextlib.AsyncExitStack() as started:

        async def start(**options: Any) -> ConsulTwin:
            twin = await start_consul_twin(**options)
            started.push_async_callback(twin.stop)
            return twin

        yield start


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session: the wire tests check status codes and bodies byte for byte,
    which our adapters (retries, error mapping) would hide."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def user(twin: NomadTwin) -> AsyncIterator[User]:
    """A user of the test's ``twin`` (each module picks its twin's options): submits jobs the
    way a person does, through the twin's HTTP API."""
    u = User(twin)
    try:
        yield u
    finally:
        await u.close()
