"""The always-on HTTP surface: /healthz, /readyz, /metrics, /status (aiohttp.web).

Every replica serves it — standbys too — so a supervisor can probe any of them and an operator
can ask any of them who leads. It binds loopback by default (MESH_HTTP_ADDR, 127.0.0.1:9464)
and is defensive about clients it does not know: small request lines, headers and bodies, a
connection that has not sent a complete request within ``header_timeout`` is closed (aiohttp
arms its keep-alive timer from the moment a connection opens), and every handler is bounded by
``handler_timeout``. It only reads: there is no endpoint that changes anything.

The server knows nothing of Nomad or meshes. It reads the controller through the small
``ControllerView`` the composition root implements, and exports whatever is in the one
``CollectorRegistry`` it is handed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from controller.http.probes import LeaderFacts, ProbeState, Verdict, health, readiness
from controller.runtime.clock import Clock

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControllerView(Protocol):
    """What the server may know about the controller."""

    def facts(self) -> LeaderFacts: ...

    async def status(self) -> dict[str, Any]:
        """The /status document (JSON-serialisable; never secrets)."""
        ...


@dataclass(frozen=True, kw_only=True)
class HttpLimits:
    max_body: int = 16 * 1024
    max_line: int = 4096
    max_field: int = 8190
    max_headers: int = 64
    header_timeout: float = 5.0
    handler_timeout: float = 5.0


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, indent=2, sort_keys=True) + "\n",
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


class HttpServer:
    """A runnable (always on). ``port`` is the bound port once ``started`` is set."""

    needs_leader = False

    def __init__(
        self,
        *,
        view: ControllerView,
        registry: CollectorRegistry,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 9464,
        stream_limit: float = 120.0,
        loop_limit: float = 10.0,
        tick: float = 1.0,
        limits: HttpLimits | None = None,
        name: str = "http",
    ) -> None:
        self.name = name
        self.view = view
        self.registry = registry
        self.clock = clock
        self.host = host
        self.port = port
        self.stream_limit = stream_limit
        self.loop_limit = loop_limit
        self.tick = tick
        self.limits = limits or HttpLimits()
        self.started = asyncio.Event()
        self._last_tick = clock.monotonic()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # --- probes ----------------------------------------------------------------------------

    def probe_state(self) -> ProbeState:
        return ProbeState(
            facts=self.view.facts(),
            loop_tick_age=max(0.0, self.clock.monotonic() - self._last_tick),
            stream_limit=self.stream_limit,
            loop_limit=self.loop_limit,
        )

    # --- app -------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_body, middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/healthz", self._probe(health))
        app.router.add_get("/readyz", self._probe(readiness))
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > self.limits.max_body:
            return _json(413, {"error": f"request body over {self.limits.max_body} bytes"})
        try:
            async with asyncio.timeout(self.limits.handler_timeout):
                return await handler(request)
        except TimeoutError:
            log.warning("http handler timed out", path=request.path)
            return _json(503, {"error": f"timed out after {self.limits.handler_timeout}s"})

    async def _index(self, _: web.Request) -> web.Response:
        return _json(200, {"endpoints": ["/healthz", "/readyz", "/metrics", "/status"]})

    def _probe(self, decide: Callable[[ProbeState], Verdict]) -> Handler:
        async def handler(_: web.Request) -> web.Response:
            verdict = decide(self.probe_state())
            body = {"status": "ok" if verdict.ok else "fail", "reason": verdict.reason}
            return _json(200 if verdict.ok else 503, body)

        return handler

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, _: web.Request) -> web.Response:
        return _json(200, await self.view.status())

    # --- runnable --------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled; the loop monitor ticks meanwhile."""
        limits = self.limits
        runner = web.AppRunner(
            self.build_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            keepalive_timeout=limits.header_timeout,
            max_line_size=limits.max_line,
            max_field_size=limits.max_field,
            max_headers=limits.max_headers,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=64)
            await site.start()
            if runner.addresses:
                self.port = int(runner.addresses[0][1])
            self.started.set()
            log.info("http server listening", url=self.url)
            while True:
                self._last_tick = self.clock.monotonic()
                await self.clock.sleep(self.tick)
        finally:
            await runner.cleanup()
