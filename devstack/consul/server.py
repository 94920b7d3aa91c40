"""Start and stop the Consul twin: an aiohttp server over ConsulState with a real check runner.

`start_consul_twin()` binds a loopback port (0 = any free one) and returns a ConsulTwin whose
`url` clients use like a `consul agent -dev` address. Test-only control lives under `/_twin/`
and on `twin.faults`; it never shadows a Consul path.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from aiohttp import web

from devstack import godur
from devstack.consul import api_agent, api_catalog
from devstack.consul.acl import (
    ANONYMOUS_ACCESSOR,
    FILTERED_HEADER,
    READ_PREFIXES,
    ConsulAcl,
    filter_body,
    permission_denied,
    write_target,
)
from devstack.consul.faults import Faults
from devstack.consul.runner import CheckRunner
from devstack.consul.state import ConsulState
from devstack.consul.validate import ApiError
from devstack.consul.wire import STATE_KEY, Handler, json_ok, text_error

FAULTS_KEY: web.AppKey[Faults] = web.AppKey("consul_faults", Faults)
ACL_KEY: web.AppKey[ConsulAcl] = web.AppKey("consul_acl", ConsulAcl)


@web.middleware
async def _acl(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ACL enforcement (see devstack/consul/acl.py): filter reads, refuse writes."""
    acl = request.app.get(ACL_KEY)
    if acl is None or not request.path.startswith("/v1/"):
        return await handler(request)
    try:
        token = acl.resolve(request)
    except web.HTTPForbidden:
        return text_error(403, "ACL not found")
    if request.method == "PUT" and request.path.startswith("/v1/agent/service/"):
        name = write_target(request, await request.read())
        if request.path.startswith("/v1/agent/service/deregister/"):
            svc = request.app[STATE_KEY].services.get(
                request.match_info.get("id", "") or request.path.rsplit("/", 1)[1]
            )
            name = svc.name if svc is not None else None
        if name is not None and not token.allowed("service", name, "write"):
            return text_error(403, permission_denied(token, "service", "write", name))
    resp = await handler(request)
    if (
        request.method == "GET"
        and request.path.startswith(READ_PREFIXES)
        and isinstance(resp, web.Response)
        and resp.status == 200
        and resp.content_type == "application/json"
        and isinstance(resp.body, bytes)
    ):
        body, filtered = filter_body(token, request.path, json.loads(resp.body))
        if filtered:
            headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
            resp = json_ok(request, body)
            for key, value in headers.items():
                if key.lower() != "content-type":
                    resp.headers[key] = value
            if token.accessor_id != ANONYMOUS_ACCESSOR:
                resp.headers[FILTERED_HEADER] = "true"
    return resp


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return text_error(e.status, e.text)
    except web.HTTPNotFound:
        return text_error(404, "404 page not found\n")
    except web.HTTPMethodNotAllowed as e:
        return text_error(405, f"method {e.method} not allowed")


async def _acl_header(request: web.Request, response: web.StreamResponse) -> None:
    policy = "deny" if request.app.get(ACL_KEY) is not None else "allow"
    response.headers.setdefault("X-Consul-Default-Acl-Policy", policy)


def _seconds(value: object) -> float:
    if isinstance(value, str):
        return godur.parse(value) / godur.SECOND
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"not a duration: {value!r}")


async def _twin_faults(request: web.Request) -> web.StreamResponse:
    faults = request.app[FAULTS_KEY]
    if request.method == "PUT":
        try:
            body = json.loads(await request.read() or b"{}")
            if "error_ratio" in body:
                faults.error_ratio = min(max(float(body["error_ratio"]), 0.0), 1.0)
            if "latency" in body:
                faults.latency = max(_seconds(body["latency"]), 0.0)
        except (ValueError, TypeError) as e:
            return text_error(400, f"bad fault settings: {e}")
    return json_ok(request, faults.snapshot())


async def _twin_pause(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("duration", "")
    try:
        duration = _seconds(raw)
    except ValueError:
        return text_error(
            400, "pause over HTTP needs ?duration=<Go duration> (nobody could resume)"
        )
    request.app[FAULTS_KEY].pause_soon(duration)  # after this answer: it drops this connection
    return web.Response(status=200, body=b"")


async def _twin_reset(request: web.Request) -> web.StreamResponse:
    request.app[FAULTS_KEY].reset()
    return json_ok(request, request.app[FAULTS_KEY].snapshot())


@dataclass
class ConsulTwin:
    """A running twin. `url` is http://host:port; `address` is host:port (CONSUL_HTTP_ADDR)."""

    url: str
    address: str
    state: ConsulState
    faults: Faults
    runner: CheckRunner
    _runner: web.AppRunner
    _host: str
    _port: int
    _site: web.TCPSite | None

    _placeholder: socket.socket | None = None

    async def _pause(self) -> None:
        # Keep the port ours while paused: a bound, never-listening SO_REUSEPORT socket makes
        # the kernel refuse connections, and nobody else can take the port before resume().
        self._placeholder = _reserve(self._host, self._port)
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        if server is not None:
            for conn in server.connections:
                conn.force_close()

    async def _resume(self) -> None:
        site = _listen_site(self._runner, self._host, self._port)
        await site.start()
        self._site = site
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    async def stop(self) -> None:
        self.faults.cancel()
        await self.runner.stop()
        await self._runner.cleanup()
        if self._placeholder is not None:
            self._placeholder.close()


def _listen_site(runner: web.AppRunner, host: str, port: int) -> web.TCPSite:
    return web.TCPSite(runner, host, port, reuse_address=True, reuse_port=True)


def _free_port(host: str) -> int:
    """A port nobody holds, picked without SO_REUSEPORT (so it is not shared with anyone)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _reserve(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def start_consul_twin(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    node_name: str = "devstack",
    datacenter: str = "dc1",
    check_runner: bool = True,
    min_check_interval: float = 1.0,
    acl: ConsulAcl | None = None,
) -> ConsulTwin:
    """Start the twin. `min_check_interval` is Consul's 1s floor; tests may lower it."""
    state = ConsulState(node_name=node_name, datacenter=datacenter, address=host)
    runner = CheckRunner(state, min_interval=min_check_interval)
    holder: list[ConsulTwin] = []
    faults = Faults(lambda: holder[0]._pause(), lambda: holder[0]._resume())
    app = web.Application(middlewares=[faults.middleware, _errors, _acl])
    app[FAULTS_KEY] = faults
    if acl is not None:
        app[ACL_KEY] = acl
    app[STATE_KEY] = state
    app[api_agent.RUNNER_KEY] = runner
    app.on_response_prepare.append(_acl_header)
    api_agent.add_routes(app)
    api_catalog.add_routes(app)
    app.router.add_route("*", "/_twin/faults", _twin_faults)
    app.router.add_route("PUT", "/_twin/pause", _twin_pause)
    app.router.add_route("PUT", "/_twin/reset", _twin_reset)
    app_runner = web.AppRunner(
        app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=1.0
    )
    await app_runner.setup()
    for attempt in range(5):
        bound = port or _free_port(host)
        site = _listen_site(app_runner, host, bound)
        try:
            await site.start()
            break
        except OSError:
            if port or attempt == 4:
                await app_runner.cleanup()
                raise
    twin = ConsulTwin(
        url=f"http://{host}:{bound}",
        address=f"{host}:{bound}",
        state=state,
        faults=faults,
        runner=runner,
        _runner=app_runner,
        _host=host,
        _port=bound,
        _site=site,
    )
    holder.append(twin)
    if check_runner:
        runner.start()
    return twin
