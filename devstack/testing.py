"""The whole controller in-process against the Nomad twin, with test timings.

The twin runs in real time in the same event loop, so waits are bounded polls of world state
(the twin's stored jobs and versions, the status Variables), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, overload

from controller.app import App, Tuning
from controller.config import Settings
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.runtime import Clock
from crds_equivalent import keys
from crds_equivalent.status import MeshStatus
from devstack.nomad import NomadTwin
from devstack.nomad.canon import canonicalize_job, spec_of
from devstack.nomad.state import VAULT_DEFAULT_IDENTITY

SECOND = 1_000_000_000
T = TypeVar("T")

FAST = Tuning(
    rollout_poll=0.3,
    alloc_debounce=0.05,
    nomad_timeout=2.0,
    nomad_retry_budget=0.3,
    reconcile_timeout=10.0,
    handle_signals=False,
)


def user_job(job_id: str, meta: dict[str, str] | None = None, *, count: int = 1) -> dict[str, Any]:
    """A service job as a user submits it (Nomad API JSON); the twin simulates its tasks."""
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": meta,
        "TaskGroups": [
            {
                "Name": "app",
                "Count": count,
                # Healthy after 50 ms instead of Nomad's 10 s, so rolling updates finish fast.
                "Update": {"MinHealthyTime": 50_000_000},
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": job_id,
                        "PortLabel": "http",
                        "Provider": "consul",
                        "Checks": [
                            {
                                "Name": "alive",
                                "Type": "http",
                                "Path": "/health",
                                "Interval": SECOND,
                                "Timeout": SECOND,
                            }
                        ],
                    }
                ],
                "Tasks": [
                    {
                        "Name": "app",
                        "Driver": "docker",
                        "Config": {"image": "example/app:1"},
                        "Resources": {"CPU": 50, "MemoryMB": 32},
                    }
                ],
            }
        ],
    }


def settings_for(twin: NomadTwin, token: str | None = None, **env: str) -> Settings:
    values = {
        "NOMAD_ADDR": twin.url,
        "MESH_HTTP_ADDR": "127.0.0.1:0",
        "MESH_HEARTBEAT_TIMEOUT": "2s",
        "MESH_BACKOFF_BASE": "50ms",
        "MESH_BACKOFF_CAP": "1s",
        "MESH_DRAIN_TIMEOUT": "5s",
        **env,
    }
    if token:
        values["NOMAD_TOKEN"] = token
    return Settings.from_env(values)


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = ..., every: float = ..., what: str = ...
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T], *, within: float = ..., every: float = ..., what: str = ...
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    within: float = 10.0,
    every: float = 0.05,
    what: str = "condition",
) -> Any:
    """Call ``check`` (sync or async) until it returns something truthy, and return that.

    The one bounded poll of world state for the tests and this harness (tests import it
    as ``tests.support.waiting.eventually``; it lives here because devstack must not import the
    test tree). Fails with AssertionError naming ``what`` and the last value once ``within``
    seconds of real time have passed; the check runs once more after the deadline.
    """
    deadline = time.monotonic() + within
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within}s (last value: {value!r})")
        await asyncio.sleep(every)


class RecordedGrants:
    """Per-job PKI roles kept in memory, for a controller run against the twins alone.

    The product keeps them in Vault (controller.vault.grants); a twin-only harness has no
    Vault, and the tests read ``roles`` to see what the controller granted and withdrew."""

    def __init__(self) -> None:
        self.roles: dict[str, tuple[str, ...]] = {}
        self.withdrawn: list[str] = []

    async def grant(self, role: str, names: Sequence[str]) -> None:
        self.roles[role] = tuple(names)

    async def withdraw(self, role: str) -> None:
        if self.roles.pop(role, None) is not None:
            self.withdrawn.append(role)


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    *,
    tuning: Tuning = FAST,
    clock: Clock | None = None,
    identity: str | None = None,
    wait_synced: bool = True,
    grants: RecordedGrants | None = None,
) -> AsyncIterator[tuple[App, asyncio.Task[int]]]:
    """Run an App as a task; stop it (SIGTERM path) and close it afterwards.

    Settings without a Vault token (``settings_for``: the twins alone) keep the per-job grants
    in ``grants`` (a fresh RecordedGrants when none is given); with one, in that Vault."""
    if grants is None and settings.vault.token is None:
        grants = RecordedGrants()
    app = App(settings, tuning=tuning, clock=clock, identity=identity, grants=grants)
    task = asyncio.create_task(app.run())
    try:
        await app.http.started.wait()
        if wait_synced:
            await eventually(app.source.synced.is_set, what="leader synced")
        yield app, task
    finally:
        if not task.done():
            app.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
        await app.close()


class User:
    """A user (or CI) talking to Nomad with its own client."""

    def __init__(self, twin: NomadTwin, token: str | None = None) -> None:
        self.twin = twin
        self.client = NomadClient(twin.url, token=token, retry_budget=0.5)
        self.jobs = NomadJobs(self.client)

    async def submit(self, job: dict[str, Any]) -> int:
        answer = await self.jobs.register_job(job, enforce_index=None)
        return int(answer["JobModifyIndex"])

    async def get(self, job_id: str, namespace: str = "default") -> dict[str, Any]:
        job = await self.jobs.get_job(job_id, namespace)
        assert job is not None
        return job

    async def close(self) -> None:
        await self.client.close()


def stored(twin: NomadTwin, job_id: str, namespace: str = "default") -> dict[str, Any] | None:
    job: dict[str, Any] | None = twin.state.jobs.get((namespace, job_id))
    return job


def versions(twin: NomadTwin, job_id: str, namespace: str = "default") -> list[int]:
    return sorted(v["Version"] for v in twin.state.job_versions.get((namespace, job_id), []))


def injected(job: dict[str, Any] | None) -> bool:
    if job is None:
        return False
    return all(
        any(t["Name"] == keys.SIDECAR_TASK for t in g["Tasks"])
        and keys.INJECTED_GROUP_META in (g.get("Meta") or {})
        for g in job["TaskGroups"]
    )


def same_spec(stored_job: dict[str, Any], submitted: dict[str, Any]) -> bool:
    """The stored job is exactly what ``submitted`` becomes when Nomad stores it."""
    canonical = canonicalize_job(
        submitted, submitted.get("Namespace") or "default", VAULT_DEFAULT_IDENTITY
    )
    return bool(spec_of(stored_job) == spec_of(canonical))


async def phase(app: App, job_id: str, namespace: str = "default") -> str | None:
    status: MeshStatus | None = await app.statuses.get(namespace, job_id)
    return str(status.phase) if status else None
