"""The composition root: settings -> adapters -> reconciler -> manager, and nothing else.

This is the one place that knows how the parts fit, so every other module can be tested alone:
- always on: the HTTP server (standbys answer /healthz, /readyz, /metrics, /status too);
- leader only: the Nomad event source (LIST -> stream -> re-LIST) and the mesh controller
  (workers over the work queue), started when the Variables lock `mesh-controller/leader` in
  MESH_CONTROLLER_NAMESPACE is ours (TTL MESH_LEADER_TTL, renewed every MESH_LEADER_RENEW);
- Job events enqueue a job's key at once; Allocation events of meshed jobs enqueue it after a
  short debounce, so a rolling deployment's burst of alloc updates costs one reconcile;
- the status store's keys feed the source's `known_keys`, so every job we ever recorded is
  looked at again after a restart or failover, even if nothing in its meta says "mesh".
One CollectorRegistry per App: two controllers in one process (tests) do not share metrics.
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from controller.config import Settings
from controller.consul.client import ConsulClient
from controller.http import HttpServer, LeaderFacts, register_phase_gauge
from controller.nomad.client import NomadClient
from controller.nomad.errors import NomadError
from controller.nomad.jobs import NomadJobs
from controller.nomad.lock import NomadVariableLock
from controller.nomad.source import NomadEventSource
from controller.nomad.stream import EventStream
from controller.nomad.variables import NomadVariables
from controller.runtime import (
    Clock,
    Controller,
    LeaderElector,
    Manager,
    Reconciler,
    SystemClock,
    WorkQueue,
    default_limiter,
    wait_for,
)
from controller.status.store import StatusStore
from controller.tlsprobe import TlsProber
from controller.vault.client import VaultClient, VaultConnection
from controller.vault.pki_admin import VaultPki
from controller.vault.trust import VaultTrust
from crds_equivalent.jobkey import JobKey
from reconcilers.certs.reconciler import CertReconciler
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.mesh.reconciler import MeshReconciler
from reconcilers.rotation.loop import rotation_loop
from reconcilers.rotation.metrics import RotationMetrics
from reconcilers.rotation.rotator import RotationSettings, Rotator

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """Internal timings that are not operator settings (tests shorten them)."""

    rollout_poll: float = 10.0  # re-check a rollout this often while it is in progress
    alloc_debounce: float = 1.0  # an Allocation event enqueues its job after this delay
    lock_delay: float | None = None  # Nomad LockDelay of the leader lock; None = the TTL
    leader_retry: float = 2.0  # a standby tries to take the lock this often
    nomad_timeout: float = 10.0  # per Nomad call
    nomad_retry_budget: float = 10.0  # total retry time of an idempotent Nomad read
    reconcile_timeout: float = 60.0  # a stuck reconcile is cancelled and retried
    holder_timeout: float = 2.0  # /status: how long to wait for the lock holder's identity
    health_delay: float = 2.0  # a job change is health-checked after this delay
    probe_timeout: float = 5.0  # per TLS probe (connect, then handshake)
    certs_delay: float = 30.0  # a job change is checked for missed renewals after this delay
    certs_interval: float = 300.0  # each meshed job is re-checked for missed renewals this often
    rotation_check: float = 3600.0  # the leader looks at the intermediate's expiry this often
    handle_signals: bool = True  # SIGTERM/SIGINT stop the manager (off when embedded)


def _version() -> str:
    try:
        return importlib.metadata.version("nomad-tls-mesh")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _renew_deadline(ttl: float, renew: float) -> float:
    """Give up on a lease well before its TTL (2/3 of it), but never before one renew."""
    third = ttl * 2 / 3
    return third if renew < third else (renew + ttl) / 2


class _Runnable:
    """Gives a plain coroutine function the Manager's Runnable shape."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]], needs_leader: bool) -> None:
        self.name = name
        self.needs_leader = needs_leader
        self._run = run

    async def run(self) -> None:
        await self._run()


class App:
    """One controller process (or one of several in a test)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        tuning: Tuning | None = None,
        identity: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.tuning = t = tuning or Tuning()
        self.registry = CollectorRegistry()
        c = settings.controller
        clock_ = self.clock

        self.nomad = NomadClient.from_settings(
            settings.nomad, timeout=t.nomad_timeout, retry_budget=t.nomad_retry_budget
        )
        self.jobs = NomadJobs(self.nomad)
        self.variables = NomadVariables(self.nomad, namespace=c.controller_namespace)
        self.statuses = StatusStore(self.variables, clock=clock_)
        self.lock = NomadVariableLock(
            self.nomad,
            namespace=c.controller_namespace,
            ttl=c.leader_ttl,
            lock_delay=t.lock_delay if t.lock_delay is not None else c.leader_ttl,
            identity=identity,
            version=_version(),
            clock=clock_,
        )
        self.elector = LeaderElector(
            self.lock,
            clock=clock_,
            ttl=c.leader_ttl,
            renew_interval=c.leader_renew,
            renew_deadline=_renew_deadline(c.leader_ttl, c.leader_renew),
            retry_period=t.leader_retry,
            registry=self.registry,
        )
        self.reconciler = MeshReconciler(
            self.jobs, self.statuses, settings.mesh, clock=clock_, rollout_poll=t.rollout_poll
        )
        self.queue, self.controller = self._worker_pool("mesh", self.reconciler, c.workers)
        namespaces = c.watched_namespaces
        self.stream = EventStream(
            self.nomad,
            namespace=namespaces[0] if len(namespaces) == 1 else "*",
            heartbeat_timeout=c.heartbeat_timeout,
            clock=clock_,
        )
        self.source = NomadEventSource(
            self.jobs,
            self.stream,
            self._job_changed,
            namespaces=namespaces,
            on_allocation=self._allocation_changed,
            known_keys=self.statuses.keys,
            resync_interval=c.resync_interval,
            clock=clock_,
            registry=self.registry,
        )
        # Health verification has its own queue: a slow TLS probe never delays injection.
        self.consul = ConsulClient.from_settings(settings.consul)
        self.vault = VaultClient(VaultConnection.from_settings(settings.vault))
        self.health = HealthReconciler(
            self.jobs,
            self.statuses,
            self.consul,
            TlsProber(timeout=t.probe_timeout, clock=clock_),
            VaultTrust(
                self.vault,
                root_mount=settings.mesh.root_mount,
                int_mount=settings.mesh.pki_mount,
                clock=clock_,
            ),
            settings.mesh,
            clock=clock_,
            interval=c.health_interval,
            registry=self.registry,
        )
        self.health_queue, self.health_controller = self._worker_pool(
            "health", self.health, c.workers
        )
        # Certificates over time: missed renewals are remediated (own queue, one worker), and
        # the leader checks the intermediate's expiry / resumes an orphaned rotation.
        self.certs = CertReconciler(
            self.jobs, self.jobs, self.statuses, self.consul, self.health.probe,
            self.health.trust, settings.mesh, clock=clock_, interval=t.certs_interval,
            registry=self.registry,
        )  # fmt: skip
        self.certs_queue, self.certs_controller = self._worker_pool("certs", self.certs, 1)
        self.rotator = Rotator(
            jobs=self.jobs, lister=self.jobs, consul=self.consul, probe=self.health.probe,
            pki=VaultPki(self.vault, settings.mesh), store=self.variables, config=settings.mesh,
            owner=self.lock.identity, clock=clock_, metrics=RotationMetrics(self.registry),
            settings=RotationSettings(
                rotate_before=c.ca_rotate_before, namespaces=c.watched_namespaces
            ),
        )  # fmt: skip
        host, port = c.http_host_port
        self.http = HttpServer(
            view=self,
            registry=self.registry,
            clock=clock_,
            host=host,
            port=port,
            stream_limit=2 * c.heartbeat_timeout,
        )
        register_phase_gauge(self.registry, self.phase_counts)
        self.manager = Manager(
            runnables=[
                self.http,
                _Runnable("event-source", self.source.run, needs_leader=True),
                self.controller,
                self.health_controller,
                self.certs_controller,
                _Runnable(
                    "ca-rotation",
                    lambda: rotation_loop(self.rotator, clock_, t.rotation_check),
                    needs_leader=True,
                ),
            ],
            clock=clock_,
            elector=self.elector,
            drain_timeout=c.drain_timeout,
            handle_signals=t.handle_signals,
        )

    def _worker_pool(
        self, name: str, reconciler: Reconciler[JobKey], workers: int
    ) -> tuple[WorkQueue[JobKey], Controller[JobKey]]:
        """A rate-limited queue and the workers that drain it into one reconciler."""
        c = self.settings.controller
        queue: WorkQueue[JobKey] = WorkQueue(
            name=name,
            clock=self.clock,
            limiter=default_limiter(
                self.clock, base=c.backoff_base, cap=c.backoff_cap, qps=c.qps, burst=c.burst
            ),
            registry=self.registry,
        )
        controller: Controller[JobKey] = Controller(
            name=name,
            reconciler=reconciler,
            queue=queue,
            clock=self.clock,
            workers=workers,
            reconcile_timeout=self.tuning.reconcile_timeout,
            registry=self.registry,
        )
        return queue, controller

    def _job_changed(self, key: JobKey) -> None:
        self.queue.add(key)
        self.health_queue.add_after(key, self.tuning.health_delay)
        self.certs_queue.add_after(key, self.tuning.certs_delay)

    def _allocation_changed(self, key: JobKey) -> None:
        self.queue.add_after(key, self.tuning.alloc_debounce)
        self.health_queue.add_after(key, self.tuning.alloc_debounce)

    # --- running ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until stopped; the exit code of Manager.run() (0 stop, 1 lease lost/crash)."""
        log.info(
            "controller starting",
            identity=self.lock.identity,
            nomad=self.nomad.addr,
            namespaces=list(self.settings.controller.watched_namespaces),
            http=self.settings.controller.http_addr,
        )
        return await self.manager.run()

    def request_stop(self) -> None:
        self.manager.request_stop()

    async def close(self) -> None:
        await self.nomad.close()
        await self.consul.close()

    # --- ControllerView (for the HTTP server) ----------------------------------------------

    def phase_counts(self) -> dict[str, int]:
        return dict(Counter(str(p) for p in self.reconciler.phases.values()))

    def facts(self) -> LeaderFacts:
        since = self.elector.leader_since
        last_line = self.stream.last_line_time
        leading = self.elector.is_leader
        return LeaderFacts(
            leading=leading,
            synced=self.source.synced.is_set(),
            leading_for=(self.clock.now() - since).total_seconds() if since else None,
            last_line_age=(
                self.clock.monotonic() - last_line if leading and last_line is not None else None
            ),
        )

    async def _leader(self) -> dict[str, Any]:
        if self.elector.is_leader:
            since = self.elector.leader_since
            return {"identity": self.lock.identity, "since": since.isoformat() if since else ""}
        try:
            holder = await wait_for(self.clock, self.lock.holder(), self.tuning.holder_timeout)
        except (NomadError, TimeoutError) as exc:
            return {"error": f"cannot read the leader lock: {exc}"}
        if not holder:
            return {}
        return {"identity": holder.get("identity", ""), "since": holder.get("since", "")}

    async def status(self) -> dict[str, Any]:
        """/status: who leads, how far the stream got, the queue, each job's phase. No secrets."""
        facts = self.facts()
        jobs = [
            {"namespace": ns, "job": job, "phase": str(phase)}
            for (ns, job), phase in sorted(self.reconciler.phases.items())
        ]
        return {
            "identity": self.lock.identity,
            "version": self.lock.version,
            "leading": facts.leading,
            "leader": await self._leader(),
            "ready": facts.synced or not facts.leading,
            "synced": facts.synced,
            "event_stream": {
                "last_index": self.source.last_index,
                "last_line_age_s": (
                    round(facts.last_line_age, 3) if facts.last_line_age is not None else None
                ),
                "lists": self.source.lists,
            },
            "queue": {
                "depth": len(self.queue),
                "waiting": self.queue.waiting,
                "in_flight": len(self.queue.in_flight),
            },
            "phases": self.phase_counts(),
            "jobs": jobs,
            "writes": dict(self.reconciler.writes),
        }


async def run_app(settings: Settings, **kwargs: Any) -> int:
    """Build, run until stopped, clean up; returns the process exit code."""
    app = App(settings, **kwargs)
    try:
        return await app.run()
    finally:
        await app.close()
