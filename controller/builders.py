"""Builders for the generic parts of the composition root: leadership, worker pools, the source.

Each takes everything it uses as a keyword argument and returns what it built, so a reader of
``App.__init__`` sees each part's dependencies at the call site, and the parts that are not
mesh-specific (a lock and its elector, a queue and its workers, a Nomad event source) are wired
the same way wherever they are needed. The feature builders (health, certs, rotation) stay on
``App``: they differ only in which of its adapters they are handed.
"""

from __future__ import annotations

import importlib.metadata

from prometheus_client import CollectorRegistry

from controller.config import ControllerSettings
from controller.nomad.cache import JobCache
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.nomad.lock import NomadVariableLock
from controller.nomad.source import EventHandler, JobPredicate, KnownKeys, NomadEventSource
from controller.nomad.stream import EventStream
from controller.runtime import (
    Clock,
    Controller,
    LeaderElector,
    Reconciler,
    WorkQueue,
    default_limiter,
)
from crds_equivalent.jobkey import JobKey
from crds_equivalent.keys import VAR_LEADER


def package_version() -> str:
    """The installed distribution's version, shown as the lock holder's and in /status."""
    try:
        return importlib.metadata.version("nomad-tls-mesh")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def renew_deadline(ttl: float, renew: float) -> float:
    """Give up on a lease well before its TTL (2/3 of it), but never before one renew."""
    third = ttl * 2 / 3
    return third if renew < third else (renew + ttl) / 2


def build_leadership(
    *,
    nomad: NomadClient,
    settings: ControllerSettings,
    lock_delay: float | None,
    retry_period: float,
    identity: str | None,
    version: str,
    clock: Clock,
    registry: CollectorRegistry,
) -> tuple[NomadVariableLock, LeaderElector]:
    """The leader lock (a Nomad Variable) and the elector that renews it."""
    lock = NomadVariableLock(
        nomad,
        path=VAR_LEADER,
        namespace=settings.controller_namespace,
        ttl=settings.leader_ttl,
        lock_delay=lock_delay if lock_delay is not None else settings.leader_ttl,
        identity=identity,
        version=version,
        clock=clock,
    )
    elector = LeaderElector(
        lock,
        clock=clock,
        ttl=settings.leader_ttl,
        renew_interval=settings.leader_renew,
        renew_deadline=renew_deadline(settings.leader_ttl, settings.leader_renew),
        retry_period=retry_period,
        registry=registry,
    )
    return lock, elector


def build_worker_pool(
    *,
    name: str,
    reconciler: Reconciler[JobKey],
    workers: int,
    settings: ControllerSettings,
    reconcile_timeout: float,
    clock: Clock,
    registry: CollectorRegistry,
) -> tuple[WorkQueue[JobKey], Controller[JobKey]]:
    """A rate-limited queue and the workers that drain it into one reconciler."""
    queue: WorkQueue[JobKey] = WorkQueue(
        name=name,
        clock=clock,
        limiter=default_limiter(
            clock,
            base=settings.backoff_base,
            cap=settings.backoff_cap,
            qps=settings.qps,
            burst=settings.burst,
        ),
        registry=registry,
    )
    controller: Controller[JobKey] = Controller(
        name=name,
        reconciler=reconciler,
        queue=queue,
        clock=clock,
        workers=workers,
        reconcile_timeout=reconcile_timeout,
        registry=registry,
    )
    return queue, controller


def build_source(
    *,
    nomad: NomadClient,
    jobs: NomadJobs,
    handler: EventHandler,
    predicate: JobPredicate,
    known_keys: KnownKeys,
    settings: ControllerSettings,
    clock: Clock,
    registry: CollectorRegistry,
    cache: JobCache | None = None,
) -> tuple[EventStream, NomadEventSource]:
    """The event stream of the watched namespaces and the source (LIST → stream → resync).
    With a ``cache``, the source keeps it filled, and the stream carries Deployment events."""
    namespaces = settings.watched_namespaces
    stream = EventStream(
        nomad,
        topics=("Job", "Allocation", "Deployment") if cache is not None else ("Job", "Allocation"),
        namespace=namespaces[0] if len(namespaces) == 1 else "*",
        heartbeat_timeout=settings.heartbeat_timeout,
        clock=clock,
    )
    source = NomadEventSource(
        jobs,
        stream,
        handler,
        predicate=predicate,
        namespaces=namespaces,
        known_keys=known_keys,
        resync_interval=settings.resync_interval,
        clock=clock,
        registry=registry,
        cache=cache,
    )
    return stream, source
