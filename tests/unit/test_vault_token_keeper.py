"""The token keeper survives what it does not expect: one odd answer is logged and retried,
never a crash of the controller (the manager ends the process when a runnable dies)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from controller.runtime.clock import FakeClock
from controller.vault import VaultClient, VaultConnection
from controller.vault.token_keeper import build_token_keeper
from tests.support.waiting import eventually


class Garbled:
    """An hvac client whose lookup answers something that is not JSON, then a valid answer."""

    def __init__(self) -> None:
        self.token = ""
        self.calls = 0

    def read(self, path: str) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        return {"data": {"ttl": 0, "expire_time": None, "policies": ["root"]}}


async def test_an_unexpected_error_is_logged_and_retried_not_fatal() -> None:
    fake = Garbled()
    vault = VaultClient(VaultConnection("http://vault.invalid:8200", "s.x"), hvac_client=fake)
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
    assert "ValueError" in logs[0]["error"]
    assert keeper.metrics.expiry._value.get() == 0.0
