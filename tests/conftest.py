"""Shared pytest fixtures. Each block is owned by one part of the project; keep blocks small."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
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


# --- layout guard --------------------------------------------------------------------------------
# `-m "not e2e"` is how a quick run leaves out real nginx, OpenBao and processes; a file under
# tests/e2e that forgot the marker would silently join it. Refuse to run instead.

E2E_DIR = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = sorted(
        {
            str(item.path)
            for item in items
            if item.path.is_relative_to(E2E_DIR) and item.get_closest_marker("e2e") is None
        }
    )
    if unmarked:
        raise pytest.UsageError(
            "tests under tests/e2e must carry pytest.mark.e2e: " + ", ".join(unmarked)
        )


# --- end layout guard ----------------------------------------------------------------------------
