"""The composition root: settings -> adapters -> reconciler -> manager, and nothing else.

This is the one place that knows how the parts fit, so every other module can be tested alone:
- always on: the HTTP server (standbys answer /healthz, /readyz, /metrics, /status too) and
  the keeper of the controller's own Vault token (`controller.vault.token_keeper`);
- leader only: the Nomad event source (LIST -> stream -> re-LIST) and the mesh controller
  (workers over the work queue), started when the Variables lock `mesh-controller/leader` in
  MESH_CONTROLLER_NAMESPACE is ours (TTL MESH_LEADER_TTL, renewed every MESH_LEADER_RENEW);
- two Nomad clients: the lock's own, and the one everything else shares, which keeps at most
  MESH_NOMAD_CONCURRENCY requests open, so a renewal never queues behind reconcile calls;
- the source is given the mesh predicate (`reconcilers.mesh.interest`) and the event router
  (`controller.routing`: which queue hears of which change, after what delay);
- the status store's keys feed the source's `known_keys`, so every job we ever recorded is
  looked at again after a restart or failover, even if nothing in its meta says "mesh" (the
  same LIST tells the store's cache which records exist and which changed);
- the store's coalesced writes go out from a leader-only runnable ("status-writes"), and
  whatever is still pending when leadership ends is written by the Manager's
  ``on_leader_stop`` hook (``StatusStore.release``);
- /status, /healthz and /readyz read the parts through `controller.http.status_view`;
- every reconciler reads jobs, allocations and deployments from the watch-fed cache
  (`controller.nomad.cache`, kept filled by the source) through `CachedJobs`, and writes
  through it to Nomad; `NomadJobs` itself only serves task control and the source's reads.
Each part is made by a builder (here or in `controller.builders`) from keyword arguments, so
`__init__` reads as the wiring diagram. Parts several reconcilers share (the TLS prober, the
Vault trust source) are built once and handed to each, never reached through a reconciler.
One CollectorRegistry per App: two controllers in one process (tests) share no metrics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from controller.builders import (
    build_leadership,
    build_source,
    build_worker_pool,
    package_version,
)
from controller.config import Settings
from controller.consul.client import ConsulClient
from controller.http import HttpServer, register_phase_gauge
from controller.http.status_view import StatusView
from controller.nomad.cache import JobCache
from controller.nomad.cache_objects import compact
from controller.nomad.cached_jobs import CachedJobs
from controller.nomad.client import NomadClient
from controller.nomad.errors import NomadError
from controller.nomad.jobs import NomadJobs
from controller.nomad.metrics import register_client_gauges
from controller.nomad.services import NomadServices
from controller.nomad.variables import NomadVariables
from controller.routing import EventRouter, default_routes
from controller.runtime import (
    Clock,
    FuncRunnable,
    Manager,
    SystemClock,
)
from controller.runtime.collector import tune_collector
from controller.runtime.memory import trim_loop
from controller.status.store import StatusStore
from controller.tlsprobe import TlsProber
from controller.vault.bootstrap import pki_layout
from controller.vault.client import VaultClient, VaultConnection
from controller.vault.grants import VaultCertGrants
from controller.vault.pki_admin import VaultPki
from controller.vault.token_keeper import build_token_keeper
from controller.vault.trust import VaultTrust
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import MeshStatus
from reconcilers.certs.reconciler import CertReconciler
from reconcilers.health.directory import MeshNames
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.injection.sample import injected_sample
from reconcilers.instances.handshakes import HandshakeMemory
from reconcilers.mesh.interest import MESH_INTEREST
from reconcilers.mesh.reconciler import MeshReconciler
from reconcilers.mesh.retry import Backoff
from reconcilers.ports import CertGrants
from reconcilers.rotation.loop import rotation_loop
from reconcilers.rotation.metrics import RotationMetrics
from reconcilers.rotation.rotator import RotationSettings, Rotator
from reconcilers.rotation.view import read_summary

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
    deploy_retry_base: float = 300.0  # first retry of a failed/reverted deployment of ours
    deploy_retry_cap: float = 1800.0  # retries then double up to this: at most ~3 an hour
    handle_signals: bool = True  # SIGTERM/SIGINT stop the manager (off when embedded)
    memory_trim: float = 10.0  # free C heap pages go back to the kernel this often


class App:
    """One controller process (or one of several in a test)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        tuning: Tuning | None = None,
        identity: str | None = None,
        grants: CertGrants | None = None,
    ) -> None:
        self.settings = settings
        # The per-job PKI roles (identity-bound leaves) live in Vault; a harness without a
        # Vault (the twin-only tests) hands in its own.
        self._grants = grants
        self.clock: Clock = clock or SystemClock()
        self.tuning = t = tuning or Tuning()
        self.registry = CollectorRegistry()
        self._adapters()
        self.lock, self.elector = build_leadership(
            nomad=self.lock_nomad,
            settings=settings.controller,
            lock_delay=t.lock_delay,
            retry_period=t.leader_retry,
            identity=identity,
            version=package_version(),
            clock=self.clock,
            registry=self.registry,
        )
        self._reconcilers()
        self._queues()
        self.stream, self.source = build_source(
            nomad=self.nomad,
            jobs=self.jobs,
            handler=self.router,
            predicate=MESH_INTEREST,
            known_keys=self.statuses.keys,
            settings=settings.controller,
            clock=self.clock,
            registry=self.registry,
            cache=self.cache,
        )
        self.view = self._build_view()
        self.http = self._build_http(view=self.view)
        self.manager = self._build_manager()

    def _adapters(self) -> None:
        """The clients of Nomad, Consul and Vault, and the stores built on them."""
        s, t = self.settings, self.tuning
        self.nomad = NomadClient.from_settings(
            s.nomad,
            timeout=t.nomad_timeout,
            retry_budget=t.nomad_retry_budget,
            max_in_flight=s.controller.nomad_concurrency,
        )
        # The leader lock's own client (own session, own connection, no in-flight bound): a
        # renewal never waits for a slot or a connection behind reconcile traffic.
        self.lock_nomad = NomadClient.from_settings(
            s.nomad, timeout=t.nomad_timeout, retry_budget=t.nomad_retry_budget
        )
        register_client_gauges(self.registry, self.nomad.slots)
        self.jobs = NomadJobs(self.nomad)
        sample = injected_sample(s.mesh)
        self.cache = JobCache(
            keep=MESH_INTEREST.job_interesting,
            sample=compact(sample) if sample is not None else b"",
        )
        self.store = CachedJobs(self.cache, self.jobs, clock=self.clock)
        self.variables = NomadVariables(self.nomad, namespace=s.controller.controller_namespace)
        self.statuses = StatusStore(
            self.variables, clock=self.clock, write_interval=s.controller.status_write_interval
        )
        # Consul is optional (a cluster on Nomad-native services has none): without
        # CONSUL_HTTP_ADDR no client exists, so nothing can ask it. The anonymous token's
        # visibility is probed at most once per health interval.
        self.consul: ConsulClient | None = (
            ConsulClient.from_settings(s.consul, visibility_ttl=s.controller.health_interval)
            if s.consul.configured
            else None
        )
        self.native = NomadServices(self.nomad)
        self.vault = VaultClient(VaultConnection.from_settings(s.vault))
        self.vault_token = build_token_keeper(self.vault, self.clock, self.registry)

    def _reconcilers(self) -> None:
        """The four features; the prober and the trust source are shared, so built once here."""
        mesh = self.settings.mesh
        self.prober = TlsProber(timeout=self.tuning.probe_timeout, clock=self.clock)
        # one memory for health and certs: an instance is handshaken for both at most once
        # per max age while nothing could have changed what it serves
        self.handshakes = HandshakeMemory(
            self.prober,
            self.clock,
            max_age=self.settings.controller.health_handshake_max_age,
        )
        self.trust = VaultTrust(
            self.vault, root_mount=mesh.root_mount, int_mount=mesh.pki_mount, clock=self.clock
        )
        self.reconciler = MeshReconciler(
            self.store,
            self.statuses,
            mesh,
            clock=self.clock,
            rollout_poll=self.tuning.rollout_poll,
            retry_backoff=Backoff(self.tuning.deploy_retry_base, self.tuning.deploy_retry_cap),
            grants=self._grants
            or VaultCertGrants(
                self.vault,
                pki_layout(mesh),
                # Half the (jittered) resync period: every resync finds the memory due for
                # its one LIST, so a deleted role is back within one resync.
                verify_interval=self.settings.controller.resync_interval / 2,
                clock=self.clock,
            ),
        )
        self.statuses.on_write = self._phase_written
        self.health = self._build_health(prober=self.prober, trust=self.trust)
        self.certs = self._build_certs(prober=self.prober, trust=self.trust)
        self.rotator = self._build_rotator(prober=self.prober, pki=VaultPki(self.vault, mesh))

    def _queues(self) -> None:
        """A queue and workers per reconciler, and the router that feeds them. Health has its
        own queue so a slow TLS probe never delays injection; certs has one worker."""
        c, t = self.settings.controller, self.tuning
        pool = functools.partial(
            build_worker_pool, settings=c, reconcile_timeout=t.reconcile_timeout,
            clock=self.clock, registry=self.registry,
        )  # fmt: skip
        self.queue, self.controller = pool(
            name="mesh", reconciler=self.reconciler, workers=c.workers
        )
        self.health_queue, self.health_controller = pool(
            name="health", reconciler=self.health, workers=c.workers
        )
        self.certs_queue, self.certs_controller = pool(
            name="certs", reconciler=self.certs, workers=1
        )
        self.router = EventRouter(
            {"mesh": self.queue, "health": self.health_queue, "certs": self.certs_queue},
            default_routes(
                health_delay=t.health_delay,
                certs_delay=t.certs_delay,
                alloc_debounce=t.alloc_debounce,
            ),
        )

    def _build_health(self, *, prober: TlsProber, trust: VaultTrust) -> HealthReconciler:
        return HealthReconciler(
            self.store,
            self.statuses,
            self.consul,
            prober,
            trust,
            self.settings.mesh,
            native=self.native,
            names=MeshNames(
                self.store,
                self.store,
                self.settings.mesh,
                self.clock,
                ttl=self.settings.controller.health_interval,
            ),
            clock=self.clock,
            interval=self.settings.controller.health_interval,
            handshakes=self.handshakes,
            registry=self.registry,
        )

    def _build_certs(self, *, prober: TlsProber, trust: VaultTrust) -> CertReconciler:
        return CertReconciler(
            self.store,
            self.jobs,
            self.statuses,
            self.consul,
            prober,
            trust,
            self.settings.mesh,
            native=self.native,
            clock=self.clock,
            interval=self.tuning.certs_interval,
            registry=self.registry,
            handshakes=self.handshakes,
        )

    def _build_rotator(self, *, prober: TlsProber, pki: VaultPki) -> Rotator:
        c = self.settings.controller
        return Rotator(
            jobs=self.store,
            lister=self.store,
            consul=self.consul,
            native=self.native,
            probe=prober,
            pki=pki,
            store=self.variables,
            config=self.settings.mesh,
            owner=self.lock.identity,
            clock=self.clock,
            metrics=RotationMetrics(self.registry),
            settings=RotationSettings(
                rotate_before=c.ca_rotate_before, namespaces=c.watched_namespaces
            ),
        )

    def _phase_written(self, key: JobKey, status: MeshStatus) -> None:
        """Whichever reconciler wrote the record, the phase book (/status, ``mesh_jobs``) shows
        the phase now stored."""
        self.reconciler.phases[key] = status.phase

    def _build_view(self) -> StatusView:
        return StatusView(
            book=self.reconciler,
            source=self.source,
            leadership=self.elector,
            lock=self.lock,
            queue=self.queue,
            clock=self.clock,
            holder_timeout=self.tuning.holder_timeout,
            lock_errors=(NomadError,),
            rotation=lambda: read_summary(self.variables),
            status_backlog=self.statuses,
        )

    def _build_http(self, *, view: StatusView) -> HttpServer:
        c = self.settings.controller
        host, port = c.http_host_port
        http = HttpServer(
            view=view,
            registry=self.registry,
            clock=self.clock,
            host=host,
            port=port,
            stream_limit=2 * c.heartbeat_timeout,
        )
        register_phase_gauge(self.registry, view.phase_counts)
        return http

    def _build_manager(self) -> Manager:
        check_every = self.tuning.rotation_check
        return Manager(
            runnables=[
                self.http,
                self.vault_token,
                FuncRunnable("event-source", self.source.run, needs_leader=True),
                self.controller,
                self.health_controller,
                self.certs_controller,
                FuncRunnable(
                    "ca-rotation",
                    lambda: rotation_loop(self.rotator, self.clock, check_every),
                    needs_leader=True,
                ),
                FuncRunnable("status-writes", self.statuses.run, needs_leader=True),
                FuncRunnable(
                    "memory-trim",
                    lambda: trim_loop(self.clock, self.tuning.memory_trim),
                    needs_leader=False,
                ),
            ],
            clock=self.clock,
            elector=self.elector,
            drain_timeout=self.settings.controller.drain_timeout,
            handle_signals=self.tuning.handle_signals,
            on_leader_stop=[self.statuses.release],
        )

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
        await self.lock_nomad.close()
        await self.vault.close()
        if self.consul is not None:
            await self.consul.close()


async def run_app(settings: Settings, **kwargs: Any) -> int:
    """Build, run until stopped, clean up; returns the process exit code. The process is the
    controller's alone, so its garbage collector is tuned for the controller's work here (not
    in ``App``: tests run several in a process of their own)."""
    tune_collector()
    app = App(settings, **kwargs)
    try:
        return await app.run()
    finally:
        await app.close()
