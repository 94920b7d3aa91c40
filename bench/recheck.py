"""The health verification's standing cost: controller CPU per re-check of an unchanged job.

The control-plane bench runs without Consul, so its health passes probe nothing; on a real
cluster every meshed job is re-checked every ``MESH_HEALTH_INTERVAL`` (30 s) whether or not
anything changed, and that is the controller's largest standing cost. This measures it apart:
the real ``HealthReconciler`` and ``TlsProber`` re-check ``--jobs`` jobs of one group of two
instances, ``--rounds`` times, moving its clock 30 s a round, against a TLS server in another
process that presents an ECDSA P-256 leaf and its intermediate (verified against the root, as
on a cluster). Jobs, allocations, status records and the catalog answer are in memory (the
catalog's HTTP read is not counted; the job is parsed from compact JSON on every read, as the
watch-fed cache does for a job it holds undeflated). Each ``MESH_HEALTH_HANDSHAKE_MAX_AGE`` is
run twice, interleaved, and every run must end Verified. The rounds run back to back, as fast as the
event loop allows (a cluster whose re-checks outrun one core), and a 50 ms timer on the same
loop reports how late it fires meanwhile: the leader lock's renewal is such a timer.

    python -m bench.recheck [--jobs 200] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry

from controller.consul.wire import HealthEntry, ServiceHealth
from controller.runtime import jsonwire
from controller.tlsprobe import TlsProber
from controller.vault.trust import MeshTrust, TrustedIssuer
from controller.x509 import leaf_info
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.spec import parse_job_specs
from crds_equivalent.status import ConditionType, MeshStatus, Phase
from reconcilers.conditions import condition
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.injection.inject import inject

INTERVAL = 30.0
SERVICE = "web"
ALLOCS = ("a1111111-0000-0000-0000-000000000000", "a2222222-0000-0000-0000-000000000000")
Cert = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _cert(name: str, signer: Cert | None, *, ca: bool, now: dt.datetime) -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = signer if signer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=71))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _serve(ports: Any, cert_file: str, key_file: str) -> None:
    """A TLS server that completes handshakes and hangs up (the probe reads nothing)."""

    async def main() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=ctx)
        ports.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class _Clock:
    """Real time moved forward by the rounds, so leaf dates and reuse ages agree."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.ahead)

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("the re-check never sleeps")


class _World:
    """The job, its allocations, the status records and the catalog's answer, in memory."""

    def __init__(self, job: dict[str, Any], status: MeshStatus, health: ServiceHealth) -> None:
        self.job, self.status, self.health = jsonwire.dumps(job), status, health
        self.statuses: dict[tuple[str, str], MeshStatus] = {}

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return dict(jsonwire.loads(self.job))  # parsed afresh, as the watch-fed cache reads

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        return [
            {"ID": a, "TaskGroup": SERVICE, "ClientStatus": "running", "DesiredStatus": "run"}
            for a in ALLOCS
        ]

    async def child_allocations(self, parent_id: str, namespace: str) -> list[dict[str, Any]]:
        return []

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return None

    async def job_deployments(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        return []

    async def promote_deployment(self, deployment_id: str, namespace: str) -> dict[str, Any]:
        raise AssertionError("the health reconciler never promotes")

    async def register_job(self, job: dict[str, Any], *, enforce_index: int | None) -> Any:
        raise AssertionError("the health reconciler never writes the job")

    async def peek(self, namespace: str, job: str) -> MeshStatus | None:
        return self.statuses.get((namespace, job), self.status)

    get = peek

    async def update(
        self, namespace: str, job: str, fn: Callable[[MeshStatus | None], MeshStatus | None]
    ) -> MeshStatus | None:
        new = fn(await self.peek(namespace, job))
        if new is not None:
            self.statuses[(namespace, job)] = new
        return new

    async def write(self, namespace: str, job: str, status: MeshStatus) -> bool:
        self.statuses[(namespace, job)] = status
        return True

    async def delete(self, namespace: str, job: str) -> bool:
        raise AssertionError("the health reconciler never deletes a status record")

    async def health_service(self, name: str) -> ServiceHealth:
        return self.health


class _Trust:
    def __init__(self, trust: MeshTrust) -> None:
        self.trust = trust

    async def get(self) -> MeshTrust:
        return self.trust


def _job(config: MeshConfig) -> dict[str, Any]:
    user = {
        "ID": "shop", "Name": "shop", "Namespace": "default", "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [{
            "Name": SERVICE, "Count": 2,
            "Networks": [{"Mode": "bridge", "DynamicPorts": [{"Label": "http", "To": 8080}]}],
            "Services": [{
                "Name": SERVICE, "PortLabel": "http",
                "Checks": [{"Name": "alive", "Type": "http", "Path": "/",
                            "Interval": 10_000_000_000, "Timeout": 2_000_000_000}],
            }],
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "app"}}],
        }],
    }  # fmt: skip
    job = inject(user, parse_job_specs(user), config)
    job["JobModifyIndex"] = 42
    return job


def _status() -> MeshStatus:
    return MeshStatus(
        phase=Phase.INJECTED,
        observed_index=42,
        spec_hash="1:bench",
        conditions=(
            condition(ConditionType.SPEC_VALID, True, "Parsed"),
            condition(ConditionType.SIDECAR_INJECTED, True, "MarkerCurrent"),
            condition(ConditionType.ROLLED_OUT, True, "AllocationsRunning"),
        ),
    )


def _registration(alloc: str, port: int) -> HealthEntry:
    """The TLS registration of one instance, with the https check the injection makes of the
    user's http check, passing."""
    service_id = f"_nomad-task-{alloc}-group-{SERVICE}-{SERVICE}-mesh_tls_http"
    return HealthEntry.from_wire(
        {
            "Node": {"Node": "n1", "Address": "127.0.0.1"},
            "Service": {
                "ID": service_id,
                "Service": SERVICE,
                "Tags": ["mesh-tls"],
                "Address": "127.0.0.1",
                "Port": port,
            },
            "Checks": [
                {"CheckID": "c", "Status": "passing", "Type": "http", "ServiceID": service_id}
            ],
        }
    )


async def _late_timers(lags: list[float], stop: asyncio.Event) -> None:
    """How late a 50 ms timer fires while the re-checks run: the leader lock's renewal is such
    a timer on the same event loop (it has its own connection, not its own loop)."""
    while not stop.is_set():
        start = time.monotonic()
        await asyncio.sleep(0.05)
        lags.append(time.monotonic() - start - 0.05)


async def _measure(
    max_age: float, port: int, trust: MeshTrust, jobs: int, rounds: int
) -> tuple[float, list[float]]:
    """Controller CPU-ms per re-check and the timer lags meanwhile; raises unless every job
    ends Verified."""
    config, clock = MeshConfig(), _Clock()
    health = ServiceHealth(tuple(_registration(a, port) for a in ALLOCS), 7)
    world = _World(_job(config), _status(), health)
    rec = HealthReconciler(
        world, world, world, TlsProber(clock=clock), _Trust(trust), config,
        clock=clock, interval=INTERVAL, handshake_max_age=max_age, registry=CollectorRegistry(),
    )  # fmt: skip
    keys = [JobKey.of("default", f"shop-{i}") for i in range(jobs)]
    await asyncio.gather(*(rec.reconcile(k) for k in keys))  # the first look: every handshake
    clock.ahead += INTERVAL
    lags: list[float] = []
    stop = asyncio.Event()
    timers = asyncio.create_task(_late_timers(lags, stop))
    start = time.process_time()
    for _ in range(rounds):
        for i in range(0, jobs, 4):  # the controller's four health workers
            await asyncio.gather(*(rec.reconcile(k) for k in keys[i : i + 4]))
        clock.ahead += INTERVAL
    spent = time.process_time() - start
    stop.set()
    await timers
    reasons = {
        (c.status.value, c.reason)
        for s in world.statuses.values()
        if (c := s.condition(ConditionType.CERT_VALID)) is not None
    }
    if reasons != {("True", "Verified")} or len(world.statuses) != jobs:
        raise RuntimeError(f"re-checks did not end Verified: {sorted(reasons)}")
    return spent / (jobs * rounds) * 1000, lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--max-age", type=float, action="append", dest="ages")
    args = parser.parse_args()
    ages = args.ages or [0.0, 300.0]
    now = dt.datetime.now(dt.UTC)
    root = _cert("bench root", None, ca=True, now=now)
    inter = _cert("bench int", root, ca=True, now=now)
    leaf = _cert(f"{SERVICE}.{MeshConfig().domain}", inter, ca=False, now=now)
    info = leaf_info(leaf[0].public_bytes(serialization.Encoding.DER))
    issuer = TrustedIssuer(
        "int", "", "bench int", info.issuer, info.authority_key_id,
        inter[0].not_valid_after_utc, True,
    )  # fmt: skip
    trust = MeshTrust(_pem(root[0]), root[0].not_valid_after_utc, (issuer,))
    with tempfile.TemporaryDirectory(prefix="bench-recheck-") as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_text(_pem(leaf[0]) + _pem(inter[0]))
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(
                leaf[1].private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        ports: Any = multiprocessing.Queue()
        server = multiprocessing.Process(
            target=_serve, args=(ports, str(cert_file), str(key_file)), daemon=True
        )
        server.start()
        try:
            port = ports.get(timeout=30)
            for age in [a for _ in range(2) for a in ages]:
                ms, lags = asyncio.run(_measure(age, port, trust, args.jobs, args.rounds))
                lags.sort()
                p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0
                print(
                    f"recheck max_age={age:g}s jobs={args.jobs} rounds={args.rounds} "
                    f"interval={INTERVAL:g}s cpu_ms_per_recheck={ms:.3f} "
                    f"timer_late_ms_p99={p99 * 1000:.1f} max={max(lags, default=0) * 1000:.1f}",
                    flush=True,
                )
        finally:
            server.terminate()


if __name__ == "__main__":
    main()
