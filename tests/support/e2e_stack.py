"""The full devstack with the controller running in-process, for the E2E tests.

Real OpenBao, real processes (the raw_exec executor), real nginx; the fixture proves on teardown
that nothing it started is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psutil
import pytest_asyncio

from controller.app import App, Tuning
from controller.config import Settings
from controller.dev.session import dev_environment
from controller.vault import VaultClient, VaultConnection, bootstrap_pki, pki_layout
from devstack.executor import RawExecDriver
from devstack.up import Devstack, build_devstack
from tests.support.waiting import eventually

TUNING = Tuning(rollout_poll=0.5, alloc_debounce=0.2, handle_signals=False)


@pytest_asyncio.fixture
async def world() -> AsyncIterator[tuple[Devstack, RawExecDriver, App]]:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    stack = await build_devstack(nodes=2, min_check_interval=0.5)
    driver: RawExecDriver = stack.executor  # raw_exec tasks are real processes
    app: App | None = None
    task: asyncio.Task[int] | None = None
    try:
        settings = Settings.from_env(dev_environment(stack.env(), {}))
        async with VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token)) as vault:
            await bootstrap_pki(vault, pki_layout(settings.mesh))
        app = App(settings, tuning=TUNING)
        task = asyncio.create_task(app.run())
        await eventually(lambda: _true(app.source.synced.is_set()), within=20, what="synced")
        yield stack, driver, app
    finally:
        if app is not None and task is not None:
            app.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 20)
            await app.close()
        await stack.stop()
        started = [p for p in me.children(recursive=True) if p.pid not in before]
        _, alive = psutil.wait_procs(started, timeout=10)
        assert alive == [], f"left running: {alive}"  # OpenBao, the app, nginx: all gone


async def _true(value: bool) -> bool:
    return value


class PinnedResolver(aiohttp.abc.AbstractResolver):
    """Resolve every name to one address (what `curl --resolve` does)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": family,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None
