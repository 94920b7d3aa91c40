"""The worlds scenarios run in: the Nomad twin alone (control-plane faults), or the whole
devstack (real OpenBao, the Consul twin, real raw_exec processes and nginx, real TLS).

Both reuse the integration harness (devstack/testing.py) for the user's
jobs, the controller settings and the in-process App, so a scenario reads like a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiohttp.abc

from chaos.harness import RequestCounter
from controller.app import App, Tuning
from controller.config import Settings
from controller.consul.client import ConsulClient
from controller.dev.demo import web_job
from controller.dev.session import dev_environment
from controller.vault import (
    VaultClient,
    VaultConnection,
    bootstrap_pki,
    pki_layout,
    root_pem,
)
from crds_equivalent import keys
from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.nomad.canon import canonicalize_job, spec_of
from devstack.nomad.jobsvc import register
from devstack.testing import FAST, User, running, settings_for
from devstack.up import Devstack, build_devstack
from reconcilers.injection.inject import uninject

# The twin-only worlds have no Consul or Vault: point the health side at a closed port so it
# fails fast (and quietly, into the log file) instead of waiting on a default address.


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def no_backends_env() -> dict[str, str]:
    port = dead_port()
    return {
        "CONSUL_HTTP_ADDR": f"127.0.0.1:{port}",
        "VAULT_ADDR": f"http://127.0.0.1:{port}",
        "MESH_HEALTH_INTERVAL": "10m",
    }


@dataclass
class TwinWorld:
    twin: NomadTwin
    app: App
    user: User
    requests: RequestCounter
    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)

    def submit_now(self, job: dict[str, Any]) -> None:
        """Register straight into the twin's state without yielding to the event loop (the
        controller cannot read one event between two such calls) and remember it as the
        user's latest spec."""
        register(self.twin.state, self.twin.scheduler, copy.deepcopy(job), "default", False, 0)
        self.submitted[job["ID"]] = job


@contextlib.asynccontextmanager
async def twin_world(
    *, buffer: int = 100, nodes: int = 2, tuning: Tuning = FAST, **env: str
) -> AsyncIterator[TwinWorld]:
    twin = await start_nomad_twin(nodes=nodes, heartbeat_interval=0.2, event_buffer_size=buffer)
    user = User(twin)
    try:
        requests = RequestCounter(twin)
        settings = settings_for(twin, **(no_backends_env() | env))
        async with running(settings, tuning=tuning) as (app, _):
            yield TwinWorld(twin, app, user, requests)
    finally:
        await user.close()
        await twin.stop()


# --- what a job looks like to its user ------------------------------------------------------

IMPLIED_CONSTRAINTS = ("${attr.vault.version}", "${attr.os.signals}")


def user_view(job: dict[str, Any]) -> dict[str, Any]:
    """The stored job as its user wrote it: our injection undone, and the constraints Nomad
    itself adds for templates with a Vault/signal change mode dropped."""
    user = spec_of(uninject(job))
    for group in user.get("TaskGroups") or []:
        kept = [
            c for c in group.get("Constraints") or [] if c.get("LTarget") not in IMPLIED_CONSTRAINTS
        ]
        group["Constraints"] = kept or None
    return user


def keeps_user_spec(stored: dict[str, Any] | None, submitted: dict[str, Any]) -> bool:
    if stored is None:
        return False
    return user_view(stored) == spec_of(canonicalize_job(copy.deepcopy(submitted), "default"))


def job_versions(twin: NomadTwin, job_id: str) -> int:
    """How many versions the job has had (Nomad keeps only the last few, but counts all)."""
    job = twin.state.jobs.get(("default", job_id))
    return int(job["Version"]) + 1 if job else 0


def sidecar_count(job: dict[str, Any] | None) -> int:
    """The most sidecar tasks (or TLS ports of one label) any group carries: 1 when right."""
    if job is None:
        return 0
    worst = 0
    for group in job.get("TaskGroups") or []:
        tasks = [t for t in group.get("Tasks") or [] if t.get("Name") == keys.SIDECAR_TASK]
        labels = [
            p.get("Label")
            for n in group.get("Networks") or []
            for p in (n.get("DynamicPorts") or []) + (n.get("ReservedPorts") or [])
            if str(p.get("Label", "")).startswith("mesh_tls_")
        ]
        dup_ports = len(labels) - len(set(labels))
        worst = max(worst, len(tasks) + dup_ports)
    return worst


def half_injected(job: dict[str, Any] | None) -> bool:
    """Some but not all of our markers: a sidecar without the marker hash, or the reverse."""
    if job is None:
        return False
    for group in job.get("TaskGroups") or []:
        has_task = any(t.get("Name") == keys.SIDECAR_TASK for t in group.get("Tasks") or [])
        has_mark = keys.INJECTED_GROUP_META in (group.get("Meta") or {})
        if has_task != has_mark:
            return True
    return False


# --- the whole devstack ----------------------------------------------------------------------

DEV_TUNING = Tuning(
    rollout_poll=0.5,
    alloc_debounce=0.2,
    health_delay=0.5,
    probe_timeout=3.0,
    reconcile_timeout=20.0,
    handle_signals=False,
)


@dataclass
class DevWorld:
    stack: Devstack
    app: App
    vault: VaultClient
    consul: ConsulClient
    trust: ssl.SSLContext


def meshed_web(job_id: str) -> dict[str, Any]:
    """The meshed raw_exec web app of `controller dev --demo` (dev.demo), under another name."""
    job = web_job(sys.executable)
    job["ID"] = job["Name"] = job_id
    group = job["TaskGroups"][0]
    group["Name"] = job_id
    group["Services"][0]["Name"] = job_id
    group["Services"][0]["Checks"][0]["Name"] = f"{job_id}-http"
    return job


@contextlib.asynccontextmanager
async def devstack_world(
    tuning: Tuning = DEV_TUNING,
    before_controller: Callable[[Devstack, VaultClient], Awaitable[None]] | None = None,
    **env: str,
) -> AsyncIterator[DevWorld]:
    """The devstack with the controller running; ``before_controller`` runs first (jobs that
    were deployed, even marked stable, before any controller looked at them)."""
    stack = await build_devstack(nodes=2, min_check_interval=0.5)
    app: App | None = None
    task: asyncio.Task[int] | None = None
    consul = ConsulClient(stack.consul.address)
    vault = VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token))
    try:
        values = dev_environment(stack.env(), {}) | {"MESH_HEALTH_INTERVAL": "2s"} | env
        settings = Settings.from_env(values)
        await bootstrap_pki(vault, pki_layout(settings.mesh))
        trust = ssl.create_default_context(cadata=await root_pem(vault, settings.mesh.root_mount))
        if before_controller is not None:
            await before_controller(stack, vault)
        app = App(settings, tuning=tuning)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.source.synced.wait(), 30)
        yield DevWorld(stack, app, vault, consul, trust)
    finally:
        if app is not None and task is not None:
            app.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 20)
            await app.close()
        await consul.close()
        await vault.close()
        await stack.stop()


async def tls_instance(world: DevWorld, service: str) -> tuple[str, int]:
    """(address, port) of a passing TLS instance, as Consul advertises it."""
    health = await world.consul.health_service(service, passing=True, tag=keys.TLS_SERVICE_TAG)
    if not health.entries:
        raise ConnectionError(f"no passing TLS instance of {service}")
    return health.entries[0].effective_address, health.entries[0].port


async def https_to(world: DevWorld, service: str, address: str, port: int) -> int:
    """GET / over HTTPS, verified against the mesh root as <service>.<domain>; 0 on failure."""
    conn = aiohttp.TCPConnector(ssl=world.trust, resolver=_Pinned(address))
    url = f"https://{service}.{world.app.settings.mesh.domain}:{port}/"
    try:
        async with (
            aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=3)) as s,
            s.get(url) as resp,
        ):
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0


async def https_get(world: DevWorld, service: str) -> int:
    """HTTPS status of a passing TLS instance that Consul names (0: none, or it failed)."""
    try:
        address, port = await tls_instance(world, service)
    except ConnectionError:
        return 0
    return await https_to(world, service, address, port)


class _Pinned(aiohttp.abc.AbstractResolver):
    """An aiohttp resolver that answers every name with one address (curl --resolve)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        result: aiohttp.abc.ResolveResult = {
            "hostname": host,
            "host": self.address,
            "port": port,
            "family": family,
            "proto": 0,
            "flags": 0,
        }
        return [result]

    async def close(self) -> None:
        return None
