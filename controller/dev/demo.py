"""The `controller dev --demo` scenario: two sample jobs, then proof that the mesh works.

`web` is a small Python HTTP app (raw_exec, a Consul service with an http check) that opts in
with job meta `mesh.tls = "true"`; `worker` does not opt in and must be left alone. Once `web` is
Ready the demo prints a status table and a `curl` command that reaches `web` over HTTPS through
its sidecar, verified against the mesh root CA, on the address and TLS port Consul advertises.
Without Consul (`controller dev --no-consul --demo`) `web` registers with `provider = "nomad"`
and the endpoint is the one Nomad's own catalog advertises, with its native checks passing.
Nothing here knows about the devstack: it talks to Nomad, Consul and the status store only.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from controller.consul.client import ConsulClient
from controller.consul.wire import HealthEntry
from controller.nomad.jobs import NomadJobs
from controller.nomad.services import SUCCESS, NomadServices
from controller.status.store import StatusStore
from crds_equivalent import keys
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import ConditionStatus, ConditionType, MeshStatus, Phase

NS = 1_000_000_000

# Answers every GET on NOMAD_IP_http:NOMAD_PORT_http; stops on SIGINT (Nomad's kill signal).
WEB_APP = r"""
import http.server, os
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {os.environ['NOMAD_JOB_NAME']} ({os.environ['NOMAD_ALLOC_ID'][:8]})\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
addr = (os.environ["NOMAD_IP_http"], int(os.environ["NOMAD_PORT_http"]))
try:
    http.server.ThreadingHTTPServer(addr, Hello).serve_forever()
except KeyboardInterrupt:
    pass
"""

WORKER = "import time\ntry:\n    while True: time.sleep(3600)\nexcept KeyboardInterrupt:\n    pass"


def _task(name: str, script: str, python: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Driver": "raw_exec",
        "Config": {"command": python, "args": ["-u", "-c", script]},
        "KillTimeout": 3 * NS,
        "Resources": {"CPU": 50, "MemoryMB": 64},
    }


def web_job(
    python: str = sys.executable, provider: str = "consul", callers: Sequence[str] = ()
) -> dict[str, Any]:
    """The meshed sample: one group, one port, one service with an http check, registered in
    ``provider``'s catalog (``nomad``: Nomad's own, for a cluster without Consul). With
    ``callers`` it is mTLS and lets only those services in (``mesh.tls.allow``); its check
    path ``/`` stays open without a certificate, as every mTLS check location is."""
    meta = {keys.MESH_TLS: "true"}
    if callers:
        meta |= {keys.MESH_TLS_MTLS: "true", keys.MESH_TLS_ALLOW: ",".join(callers)}
    return {
        "ID": "web",
        "Name": "web",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": meta,
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 1,
                "Update": {"MinHealthyTime": 2 * NS},
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": "web",
                        "PortLabel": "http",
                        "Provider": provider,
                        "Checks": [
                            {
                                "Name": "web-http",
                                "Type": "http",
                                "Path": "/",
                                "Interval": 2 * NS,
                                "Timeout": 1 * NS,
                            }
                        ],
                    }
                ],
                "Tasks": [_task("app", WEB_APP, python)],
            }
        ],
    }


def worker_job(python: str = sys.executable) -> dict[str, Any]:
    """The sample that does not opt in: the controller must never touch it."""
    return {
        "ID": "worker",
        "Name": "worker",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "worker", "Count": 1, "Tasks": [_task("work", WORKER, python)]}],
    }


@dataclass(frozen=True)
class Endpoint:
    service: str
    host: str  # the name the certificate carries
    address: str
    port: int


async def wait_ready(statuses: StatusStore, key: JobKey, within: float) -> MeshStatus:
    """Poll the status record until it is Ready *and* verified: the health checks (Consul on the
    TLS port, the served certificate) have reported, not only the rollout (TimeoutError after
    ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        status = await statuses.get(*key)
        if status is not None and status.phase == Phase.READY and _verified(status):
            return status
        if time.monotonic() > deadline:
            phase = status.phase if status else "no status"
            raise TimeoutError(f"{key[1]} not Ready after {within:.0f}s (phase: {phase})")
        await asyncio.sleep(0.25)


def _verified(status: MeshStatus) -> bool:
    checked = (ConditionType.CERT_VALID, ConditionType.CONSUL_HEALTHY)
    return all(
        (c := status.condition(kind)) is not None and c.status == ConditionStatus.TRUE
        for kind in checked
    )


async def tls_endpoint(consul: ConsulClient, service: str, domain: str, within: float) -> Endpoint:
    """A passing TLS instance of ``service`` as Consul advertises it."""
    deadline = time.monotonic() + within
    while True:
        health = await consul.health_service(service, passing=True, tag=keys.TLS_SERVICE_TAG)
        if health.entries:
            entry: HealthEntry = health.entries[0]
            return Endpoint(service, f"{service}.{domain}", entry.effective_address, entry.port)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no passing {keys.TLS_SERVICE_TAG} instance of {service}")
        await asyncio.sleep(0.25)


async def native_tls_endpoint(
    services: NomadServices, service: str, namespace: str, domain: str, within: float
) -> Endpoint:
    """A TLS instance of ``service`` as Nomad's own catalog advertises it, whose native checks
    all pass (Nomad has no ``passing`` filter: the check results are read per allocation)."""
    deadline = time.monotonic() + within
    while True:
        health = await services.service_health(service, namespace)
        for instance in health.instances:
            reg = instance.registration
            passing = instance.checks and all(c.status == SUCCESS for c in instance.checks)
            if keys.TLS_SERVICE_TAG in reg.tags and passing:
                return Endpoint(service, f"{service}.{domain}", reg.address, reg.port)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no passing {keys.TLS_SERVICE_TAG} instance of {service} in Nomad")
        await asyncio.sleep(0.25)


def curl_command(ca_file: str, endpoint: Endpoint) -> str:
    """The ready-to-paste proof: HTTPS, verified against the root, on the catalog's address."""
    host, port = endpoint.host, endpoint.port
    return shlex.join(
        [
            "curl",
            "--cacert",
            ca_file,
            f"https://{host}:{port}/",
            "--resolve",
            f"{host}:{port}:{endpoint.address}",
        ]
    )


async def print_table(
    out: TextIO,
    jobs: NomadJobs,
    statuses: StatusStore,
    names: Sequence[str],
    tls: Endpoint,
    endpoints: Mapping[str, str] | None = None,
) -> None:
    """One row per job; ``endpoints`` adds the endpoint column of jobs other than ``tls``'s."""
    table = Table(title="nomad-tls-mesh demo")
    for column in ("job", "meshed", "phase", "job versions", "endpoint"):
        table.add_column(column)
    for name in names:
        versions = await jobs.job_versions(name, "default")
        status = await statuses.get("default", name)
        meshed = status is not None
        endpoint = (endpoints or {}).get(name, "-")
        if name == tls.service:
            endpoint = f"https://{tls.host}:{tls.port} @ {tls.address}"
        table.add_row(
            name,
            "yes" if meshed else "no",
            str(status.phase) if status else "-",
            str(len(versions)),
            endpoint,
        )
    Console(file=out, width=110).print(table)
