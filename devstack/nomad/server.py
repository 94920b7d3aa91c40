"""Start and stop the Nomad twin: wire the store, scheduler, clients and HTTP app.

``start_nomad_twin`` returns a running ``NomadTwin``; ``stop()`` ends event streams,
stops every allocation through its driver, cancels background work and closes the
listener, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from devstack.nomad import (
    http_allocs,
    http_deploy,
    http_jobs,
    http_misc,
    http_services,
    http_stream,
    http_vars,
    http_volumes,
)
from devstack.nomad.children import ChildJobs
from devstack.nomad.client import Client
from devstack.nomad.ctx import CTX_KEY, TwinCtx
from devstack.nomad.errors import ApiError
from devstack.nomad.faults import NomadFaults, fault_middleware
from devstack.nomad.hooks import AllocHooks, ServiceChecks, TaskDriver
from devstack.nomad.httpbase import text
from devstack.nomad.identity import NomadApi, VaultClientConfig, WorkloadIdentities
from devstack.nomad.nodes import Node, NodeConfig, make_nodes
from devstack.nomad.scheduler import Scheduler
from devstack.nomad.simdriver import SimulatedDriver
from devstack.nomad.state import NomadState
from devstack.nomad.variables import VariableStore

Middleware = Callable[..., Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return text(exc.code, exc.message)
    except web.HTTPNotFound:
        return text(404, "")
    except web.HTTPMethodNotAllowed:
        return text(405, "Invalid method")
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        return text(500, str(exc))


@dataclass
class NomadTwin:
    url: str
    management_token: str | None
    state: NomadState
    faults: NomadFaults
    ctx: TwinCtx
    nodes: list[Node]
    _runner: web.AppRunner
    _tmpdir: str | None

    @property
    def scheduler(self) -> Scheduler:
        return self.ctx.sched

    @property
    def client(self) -> Client:
        return self.ctx.client

    @property
    def variables(self) -> VariableStore:
        return self.ctx.variables

    async def stop(self) -> None:
        self.state.broker.close()
        for task in list(self.ctx.streams):
            if task is not None:
                task.cancel()
        if self.ctx.children is not None:
            await self.ctx.children.close()
        await self.ctx.sched.close()
        await self.ctx.client.close()
        self.ctx.variables.close()
        await self._runner.cleanup()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


async def start_nomad_twin(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    nodes: int = 3,
    acl: bool = False,
    vault_addr: str | None = None,
    vault_jwt_auth_backend_path: str = "jwt-nomad",
    vault_create_from_role: str = "",
    vault_default_identity: bool = True,
    oidc_issuer: str | bool = True,
    alloc_hooks: AllocHooks | None = None,
    drivers: Mapping[str, TaskDriver] | None = None,
    event_buffer_size: int = 100,
    heartbeat_interval: float = 30.0,
    data_dir: str | None = None,
    middlewares: Sequence[Middleware] = (),
    service_checks: ServiceChecks | None = None,
    node_configs: Sequence[NodeConfig] = (),
) -> NomadTwin:
    """Start the twin. ``middlewares`` run inside the twin's own (errors, faults), in order:
    an observer such as the benchmark's request counter sees every request as served.

    ``service_checks`` is where clients read the Consul checks of an allocation for its
    deployment health; by default the alloc hooks when they can answer it (the registrar
    does). Without any, registered checks are never seen, as on a client whose services
    never reached Consul: a group with checks then never turns healthy.

    ``node_configs[i]`` gives node ``i + 1`` its host volumes and CSI node plugins
    (``NodeConfig``); the scheduler places volume-mounting groups only where they fit.

    Vault as a Nomad 1.10 client is configured for it (``vault`` block of the agent): its
    address, ``jwt_auth_backend_path`` and ``create_from_role`` (the role when a task's
    ``vault.role`` is empty; empty: the auth method's ``default_role``). Clients hold no Vault
    token: a task's token comes from a JWT login with its ``vault_<cluster>`` identity.
    ``oidc_issuer``: True makes the twin's own URL the issuer (``iss`` claims and
    ``/.well-known/openid-configuration``), a string that URL, False none (discovery 404)."""
    if service_checks is None and isinstance(alloc_hooks, ServiceChecks):
        service_checks = alloc_hooks
    state = NomadState(event_buffer_size)
    if not vault_default_identity:  # a server without vault.default_identity (pre-1.10 style)
        state.vault_default_identity = None
    node_list = make_nodes(nodes, node_configs)
    tmpdir = None
    if data_dir is None:
        tmpdir = tempfile.mkdtemp(prefix="nomad-twin-")
        data_dir = tmpdir
    alloc_root = Path(data_dir) / "alloc"
    alloc_root.mkdir(parents=True, exist_ok=True)
    faults = NomadFaults()
    holder: dict[str, Scheduler] = {}
    api = NomadApi(WorkloadIdentities())
    client = Client(
        state,
        node_list,
        dict(drivers or {}),
        SimulatedDriver(),
        alloc_root,
        alloc_hooks,
        VaultClientConfig(vault_addr, vault_jwt_auth_backend_path, vault_create_from_role),
        lambda dep: holder["sched"].deployment_changed(dep),
        api,
        service_checks,
    )
    sched = Scheduler(state, node_list, client)
    holder["sched"] = sched
    client.enqueue_eval = sched.enqueue
    ctx = TwinCtx(
        state=state,
        sched=sched,
        client=client,
        nodes=node_list,
        faults=faults,
        variables=VariableStore(state),
        acl=acl,
        heartbeat=heartbeat_interval,
        identities=api.identities,
        children=ChildJobs(state, sched),
    )
    management = http_misc.bootstrap(state)["SecretID"] if acl else None
    app = web.Application(middlewares=[error_middleware, fault_middleware(faults), *middlewares])
    app[CTX_KEY] = ctx
    for module in (
        http_jobs,
        http_allocs,
        http_deploy,
        http_stream,
        http_vars,
        http_misc,
        http_services,
        http_volumes,
    ):
        module.routes(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server
    if server is not None:
        with contextlib.suppress(Exception):
            bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    api.addr = f"http://{host}:{bound}"
    if oidc_issuer:
        api.identities.issuer = api.addr if oidc_issuer is True else str(oidc_issuer)
    sched.start()  # after the address is known: tasks get it for their templates
    assert ctx.children is not None
    ctx.children.start()
    return NomadTwin(
        url=api.addr,
        management_token=management,
        state=state,
        faults=faults,
        ctx=ctx,
        nodes=node_list,
        _runner=runner,
        _tmpdir=tmpdir,
    )
