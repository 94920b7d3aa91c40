"""A level-free wake-up: every ``fire`` wakes everybody waiting at that moment.

Blocking queries and event subscriptions re-check their condition after each wake-up,
so one shared notifier per store is enough and nothing is queued per waiter.
"""

from __future__ import annotations

import asyncio


class Notifier:
    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None

    def fire(self) -> None:
        fut, self._fut = self._fut, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def wait(self, wait: float) -> bool:
        """True when fired, False on timeout."""
        if self._fut is None:
            self._fut = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._fut), max(0.0, wait))
        except TimeoutError:
            return False
        return True
