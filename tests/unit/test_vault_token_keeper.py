"""The token keeper survives what it does not expect: one odd answer is logged and retried,
never a crash of the controller (the manager ends the process when a runnable dies)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from controller.runtime.clock import FakeClock
from controller.vault import VaultClient, VaultConnection
from controller.vault.token_keeper import build_token_keeper
from tests.support.waiting import eventually


class Garbled:
    """A Vault whose token lookup first answers something that is not JSON, then a valid one."""

    def __init__(self) -> None:
        self.calls = 0

    async def lookup_self(self, _: web.Request) -> web.Response:
        self.calls += 1
        if self.calls == 1:
            return web.Response(status=200, text="<html>gateway hiccup</html>")
        return web.json_response({"data": {"ttl": 0, "expire_time": None, "policies": ["root"]}})


async def test_an_unexpected_error_is_logged_and_retried_not_fatal() -> None:
    fake = Garbled()
    app = web.Application()
    app.router.add_get("/v1/auth/token/lookup-self", fake.lookup_self)
    async with TestServer(app, host="127.0.0.1") as server:
        vault = VaultClient(VaultConnection(str(server.make_url("")).rstrip("/"), "s.x"))
        async with vault:
            await _keeper_survives_one_garbled_answer(vault)
    assert fake.calls == 2


async def _keeper_survives_one_garbled_answer(vault: VaultClient) -> None:
    clock = FakeClock()
    keeper = build_token_keeper(vault, clock, CollectorRegistry())
    with capture_logs() as logs:
        task = asyncio.create_task(keeper.run())
        try:
            await eventually(lambda: clock.sleepers == 1, what="keeper waiting to retry")
            assert not task.done()
            await clock.advance(1.0)
            await eventually(lambda: keeper.facts is not None, what="looked up on retry")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [e["event"] for e in logs] == ["vault token upkeep failed"]
    assert "not JSON" in logs[0]["error"] and "gateway hiccup" in logs[0]["error"]
    assert keeper.metrics.expiry._value.get() == 0.0
