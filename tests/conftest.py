"""Shared pytest fixtures. Each block is owned by one part of the project; keep blocks small."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from devstack.vault import OpenBao, start_openbao

# Fixtures every layer may use, kept in tests/support so that no test module has to import
# (and re-export) another module's fixtures: the twin factories, and the Nomad adapter on a twin.
pytest_plugins = ["tests.support.twins", "tests.support.nomad_fixtures"]

# --- OpenBao (devstack/vault.py) -----------------------------------------------------------------
# One real dev-mode OpenBao per test session (per xdist worker). Tests that change global state
# (seal, mounts) must put it back or use their own mount names.


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def openbao() -> AsyncIterator[OpenBao]:
    bao = await start_openbao()
    try:
        yield bao
    finally:
        await bao.stop()


# --- end OpenBao ---------------------------------------------------------------------------------
