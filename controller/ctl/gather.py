"""I/O for ``controllerctl status``: read the status records and, with --live, the world.

Which jobs are looked at: every job with a status record (the controller saw it meshed once,
so a flag removed while it was down still shows up, as an orphaned sidecar) plus every job whose
job-level meta mentions ``mesh.tls`` in the LIST (a job meshed since the controller last ran).
A job meshed only through *group* meta that the controller never recorded is not in the LIST's
stubs; ``--job`` reads it directly. Reads run concurrently, bounded, and each backend that fails
is named in the report instead of aborting it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from controller.config import Settings
from controller.consul.wire import ConsulError, HealthEntry
from controller.ctl.common import Clients, open_clients
from controller.ctl.edge_rows import upstream_services
from controller.ctl.leader import read_leader
from controller.ctl.report import assemble
from controller.ctl.rows import NOMAD_PROVIDER, JobFacts, World, service_names
from controller.nomad.errors import NomadError
from controller.nomad.jobs import NomadJobs
from controller.nomad.services import NomadServices
from controller.nomad.variables import NomadVariables
from controller.status.store import StatusStore
from controller.vault import VaultError, default_issuer_id
from crds_equivalent import keys
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import MeshStatus
from crds_equivalent.status_report import Backend, LeaderInfo, RotationSummary, StatusReport
from reconcilers.instances.catalogs import native_entries
from reconcilers.instances.observe import instance_allocations
from reconcilers.rotation.view import read_summary

T = TypeVar("T")
CONCURRENCY = 16


@dataclass(frozen=True)
class StatusOptions:
    namespace: str = "*"
    job: str | None = None
    live: bool = True
    status_url: str | None = None


def _wanted(key: JobKey, options: StatusOptions) -> bool:
    ns, job = key
    return (options.namespace in ("*", ns)) and (options.job is None or options.job == job)


async def _bounded(calls: Sequence[Awaitable[T]]) -> list[T]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Awaitable[T]) -> T:
        async with limit:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def status_keys(clients: Clients, options: StatusOptions) -> list[JobKey]:
    """The keys of the status records wanted, without reading them (one LIST)."""
    store = StatusStore(NomadVariables(clients.nomad, namespace=clients.namespace))
    return [k for k in await store.keys() if _wanted(k, options)]


async def read_jobs_only(
    clients: Clients, options: StatusOptions, known: Sequence[JobKey]
) -> dict[JobKey, dict[str, Any]]:
    """The candidate jobs as Nomad stores them (no allocations); gone ones left out."""
    jobs = NomadJobs(clients.nomad)
    ordered = await candidate_keys(clients, options, known)
    found = await _bounded([jobs.get_job(k[1], k[0]) for k in ordered])
    return {k: j for k, j in zip(ordered, found, strict=True) if j is not None}


async def read_statuses(clients: Clients, options: StatusOptions) -> dict[JobKey, MeshStatus]:
    store = StatusStore(NomadVariables(clients.nomad, namespace=clients.namespace))
    wanted = [k for k in await store.keys() if _wanted(k, options)]
    found = await _bounded([store.get(*k) for k in wanted])
    return {k: s for k, s in zip(wanted, found, strict=True) if s is not None}


def _flagged(stub: Mapping[str, Any]) -> bool:
    meta = stub.get("Meta")
    return isinstance(meta, Mapping) and any(str(k).startswith(keys.MESH_TLS) for k in meta)


async def candidate_keys(
    clients: Clients, options: StatusOptions, known: Sequence[JobKey]
) -> list[JobKey]:
    """The jobs to look at: ``known`` (those with a status record) and every job whose
    job-level meta mentions mesh.tls in the LIST (or ``--job``), children left out."""
    jobs = NomadJobs(clients.nomad)
    candidates = set(known)
    if options.job is not None and options.namespace != "*":
        candidates.add(JobKey.of(options.namespace, options.job))
    else:
        listing = await jobs.list_jobs(options.namespace, meta=True, prefix=options.job)
        for stub in listing.stubs:
            key = JobKey.of(str(stub.get("Namespace") or "default"), str(stub.get("ID") or ""))
            if stub.get("ParentID"):
                continue  # a child is shown in its parent's row (its instances are the parent's)
            if _wanted(key, options) and (_flagged(stub) or options.job is not None):
                candidates.add(key)
    return sorted(candidates)


async def read_jobs(
    clients: Clients, options: StatusOptions, known: Sequence[JobKey]
) -> dict[JobKey, JobFacts]:
    jobs = NomadJobs(clients.nomad)
    ordered = await candidate_keys(clients, options, known)

    async def one(key: JobKey) -> JobFacts:
        job = await jobs.get_job(key[1], key[0])
        allocs = await instance_allocations(jobs, job, key[1], key[0]) if job is not None else []
        return JobFacts(job, allocs)

    return dict(zip(ordered, await _bounded([one(k) for k in ordered]), strict=True))


async def read_health(clients: Clients, names: Sequence[str]) -> dict[str, list[HealthEntry]]:
    consul = clients.consul
    if consul is None:
        return {}
    answers = await _bounded([consul.health_service(n) for n in names])
    return {n: list(a.entries) for n, a in zip(names, answers, strict=True)}


async def read_native_health(
    clients: Clients, keys_: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[HealthEntry]]:
    """Nomad's own catalog for (namespace, service), in Consul's shape (as the health
    reconciler reads it, ``reconcilers.instances.catalogs``)."""
    services = NomadServices(clients.nomad)
    answers = await _bounded([services.service_health(name, ns) for ns, name in keys_])
    return {k: list(native_entries(a)) for k, a in zip(keys_, answers, strict=True)}


def _error(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


async def status_report(clients: Clients, options: StatusOptions, now: datetime) -> StatusReport:
    """The whole report; never raises for a backend that does not answer."""
    settings = clients.settings
    config = settings.mesh
    nomad = Backend(name="nomad", address=clients.nomad.addr, consulted=True, ok=True)
    consul = Backend(
        name="consul",
        address=clients.consul.url if clients.consul is not None else "(not configured)",
        consulted=options.live and clients.consul is not None,
        ok=True,
    )
    vault = Backend(name="vault", address=clients.vault.conn.addr, consulted=options.live, ok=True)
    leader: LeaderInfo | None = None
    world: World | None = None
    rotation: RotationSummary | None = None
    try:
        statuses = await read_statuses(clients, options)
        rotation = await read_summary(NomadVariables(clients.nomad, namespace=clients.namespace))
        leader, _, _ = await read_leader(clients.nomad, clients.namespace, options.status_url)
        jobs = await read_jobs(clients, options, list(statuses)) if options.live else None
    except NomadError as exc:
        nomad = nomad.model_copy(update={"ok": False, "error": _error(exc)})
        return assemble(
            None, now=now, live=options.live, leader=leader, backends=[nomad], rotation=rotation
        )
    health: dict[str, list[HealthEntry]] | None = {}
    native: dict[tuple[str, str], list[HealthEntry]] | None = {}
    issuer: str | None = None
    if jobs is not None:
        names = sorted(
            {
                n
                for f in jobs.values()
                if f.job
                for n in [
                    *service_names(f.job, config),
                    *upstream_services(f.job, config, "consul"),
                ]
            }
        )
        if names and clients.consul is None:
            health = None  # unknown, not unhealthy: say which services need Consul
            consul = consul.model_copy(
                update={
                    "consulted": True,
                    "ok": False,
                    "error": "CONSUL_HTTP_ADDR is not set; needed by meshed service(s) "
                    + ", ".join(names),
                }
            )
        else:
            try:
                health = await read_health(clients, names)
            except ConsulError as exc:
                health = None
                consul = consul.model_copy(update={"ok": False, "error": _error(exc)})
        natives = sorted(
            {
                (k[0], n)
                for k, f in jobs.items()
                if f.job
                for n in [
                    *service_names(f.job, config, provider=NOMAD_PROVIDER),
                    *upstream_services(f.job, config, NOMAD_PROVIDER),
                ]
            }
        )
        try:
            native = await read_native_health(clients, natives)
        except NomadError as exc:
            native = None
            nomad = nomad.model_copy(update={"ok": False, "error": _error(exc)})
        try:
            issuer = await default_issuer_id(clients.vault, config.pki_mount) or None
        except VaultError as exc:
            vault = vault.model_copy(update={"ok": False, "error": _error(exc)})
    world = World(
        statuses=statuses,
        now=now,
        config=config,
        jobs=jobs,
        health=health,
        native_health=native,
        default_issuer=issuer,
    )
    return assemble(
        world,
        now=now,
        live=options.live,
        leader=leader,
        backends=[nomad, consul, vault],
        rotation=rotation,
    )


async def one_report(settings: Settings, options: StatusOptions) -> StatusReport:
    """One report, as of now, over clients opened (and closed) for it."""
    async with open_clients(settings) as clients:
        return await status_report(clients, options, datetime.now(UTC))
