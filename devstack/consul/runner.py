"""Runs every agent check on its interval, as Consul's agent does, and feeds results to state.

Each HTTP/TCP check gets its own task: a random initial stagger up to one interval, then one
probe per interval (never below the agent's minimum). Results pass through Consul's status
handler: the counters start at their thresholds, so the first result counts at once, and
afterwards SuccessBeforePassing consecutive successes are needed to turn passing and
FailuresBeforeCritical (FailuresBeforeWarning) consecutive failures to turn critical (warning).
TTL checks go critical with "TTL expired" unless refreshed. Other kinds (script, gRPC, docker,
alias) are registered but not run: they keep their initial status.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import aiohttp

from devstack import godur
from devstack.consul import probes
from devstack.consul.model import Check
from devstack.consul.state import ConsulState


class StatusHandler:
    """Consul's agent/checks StatusHandler: thresholds on consecutive results."""

    def __init__(
        self,
        success_before_passing: int,
        failures_before_warning: int,
        failures_before_critical: int,
    ) -> None:
        self.success_before_passing = success_before_passing
        self.failures_before_warning = failures_before_warning or failures_before_critical
        self.failures_before_critical = failures_before_critical
        self.successes = success_before_passing
        self.failures = failures_before_critical

    def result(self, status: str) -> str | None:
        """The status to record for one probe result, or None to keep the current one."""
        if status in ("passing", "warning"):
            self.successes += 1
            self.failures = 0
            return status if self.successes >= self.success_before_passing else None
        self.failures += 1
        self.successes = 0
        if self.failures >= self.failures_before_critical:
            return status
        if self.failures >= self.failures_before_warning:
            return "warning"
        return None


class CheckRunner:
    """Subscribes to the state's checks and keeps one task per runnable check."""

    def __init__(
        self, state: ConsulState, *, min_interval: float = 1.0, cafile: str | None = None
    ) -> None:
        self._state = state
        self._min_interval = min_interval
        self._cafile = cafile
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ttl_reset: dict[str, asyncio.Event] = {}
        self._ttl_output: dict[str, str] = {}  # last output set through the API, per TTL check
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            auto_decompress=True,
        )
        self._state.subscribe(self)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    # -- CheckListener ------------------------------------------------------------------------

    def check_added(self, check: Check) -> None:
        self.check_removed(check.check_id)
        if check.type in ("http", "tcp"):
            coro = self._run_probe(check)
        elif check.type == "ttl":
            self._ttl_reset[check.check_id] = asyncio.Event()
            coro = self._run_ttl(check)
        else:
            return
        self._tasks[check.check_id] = asyncio.get_running_loop().create_task(coro)

    def check_removed(self, check_id: str) -> None:
        task = self._tasks.pop(check_id, None)
        self._ttl_reset.pop(check_id, None)
        self._ttl_output.pop(check_id, None)
        if task is not None:
            task.cancel()

    # -- TTL checks ---------------------------------------------------------------------------

    def ttl_update(self, check_id: str, status: str, output: str) -> None:
        """PUT /v1/agent/check/{pass,warn,fail,update}: record and renew the TTL."""
        limit = probes.DEFAULT_OUTPUT_MAX
        if len(output) > limit:
            output = f"{output[:limit]} ... (captured {limit} of {len(output)} bytes)"
        self._state.update_check(check_id, status, output)
        if (event := self._ttl_reset.get(check_id)) is not None:
            self._ttl_output[check_id] = output
            event.set()

    async def _run_ttl(self, check: Check) -> None:
        ttl = int(check.definition.get("TTL", 0)) / godur.SECOND
        event = self._ttl_reset[check.check_id]
        while True:
            try:
                await asyncio.wait_for(event.wait(), ttl)
            except TimeoutError:
                last_output = self._ttl_output.get(check.check_id, "")
                expired = "TTL expired"
                if last_output:
                    expired += f" (last output before timeout follows): {last_output}"
                self._state.update_check(check.check_id, "critical", expired)
                await event.wait()
            event.clear()

    # -- HTTP and TCP checks ------------------------------------------------------------------

    async def _run_probe(self, check: Check) -> None:
        defn = check.definition
        interval = max(int(defn.get("Interval", 0)) / godur.SECOND, self._min_interval)
        handler = StatusHandler(
            int(defn.get("SuccessBeforePassing", 0)),
            int(defn.get("FailuresBeforeWarning", 0)),
            int(defn.get("FailuresBeforeCritical", 0)),
        )
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            if check.type == "http":
                assert self._session is not None
                status, output = await probes.http_probe(self._session, defn, cafile=self._cafile)
            else:
                status, output = await probes.tcp_probe(defn)
            verdict = handler.result(status)
            if verdict is not None:
                self._state.update_check(check.check_id, verdict, output)
            await asyncio.sleep(interval)
