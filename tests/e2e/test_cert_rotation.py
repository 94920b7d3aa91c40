"""``controllerctl rotate-ca`` end to end: three meshed raw_exec jobs behind real nginx sidecars
whose certificates come from real templates against OpenBao; a client polls every service over
HTTPS, verifying against the root CA, for the whole rotation and counts failed requests. The
first ``rotate-ca`` process is SIGKILLed after its first wave; a second one resumes it. At the
end every instance serves a leaf of the new issuer and the old issuer is read-only, and not one
request failed.

The jobs carry what an operator running a zero-downtime rotation sets: a group
``shutdown_delay``. Nomad deregisters an old allocation's services from Consul, waits that long,
and only then stops its tasks (the app, then the nginx sidecar with SIGQUIT, its graceful
stop), so a client that resolves passing instances from Consul per request never meets one
that is going away.

Its own PKI mounts (``e2e_pki``/``e2e_pki_int``), so other tests' issuers are not rotated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from controller.nomad.client import NomadClient
from controller.nomad.variables import NomadVariables
from controller.tlsprobe import authority_key_id, subject_key_id
from controller.vault import PkiLayout, VaultClient, VaultConnection, bootstrap_pki, read_issuer
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig, SidecarDriver
from devstack.vault import OpenBao
from reconcilers.injection.plan import Apply, plan_job
from reconcilers.rotation.state import RotationState, Stage
from tests.support.executor_stack import (
    NGINX,
    NS,
    Stack,
    app_task,
    grant_job,
    running_stack,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

ROOT, INT = "e2e_pki", "e2e_pki_int"
CONFIG = MeshConfig(
    sidecar_driver=SidecarDriver.RAW_EXEC, nginx_bin=NGINX, root_mount=ROOT, pki_mount=INT
)
SERVICES = ("red", "green", "blue")
SHUTDOWN_DELAY = 2 * NS  # far above the poller's resolve-to-request gap (milliseconds)
CTL = str(Path(sys.executable).parent / "controllerctl")


@pytest.fixture
async def stack(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(openbao, tmp_path / "data") as s:
        # After the stack's own bootstrap: the workload policy the tasks log in with must
        # grant this test's mounts (the stack's default bootstrap writes it for pki_int).
        await bootstrap_pki(
            VaultClient(VaultConnection(openbao.addr, openbao.root_token)),
            PkiLayout(root_mount=ROOT, int_mount=INT),
        )
        yield s


def meshed_job(name: str) -> dict[str, Any]:
    user = {
        "ID": name,
        "Name": name,
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 2,
                "Update": {"MaxParallel": 1},
                "ShutdownDelay": SHUTDOWN_DELAY,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": name,
                        "PortLabel": "http",
                        "Checks": [
                            {"Type": "http", "Path": "/", "Interval": NS // 5, "Timeout": NS}
                        ],
                    }
                ],
                "Tasks": [app_task()],
            }
        ],
    }
    decision = plan_job(user, CONFIG)
    assert isinstance(decision, Apply)
    return decision.job


class Poller:
    """A mesh client: passing TLS instances from Consul, one verified HTTPS GET after another."""

    def __init__(self, stack: Stack, root_pem: str) -> None:
        self.stack = stack
        self.trust = ssl.create_default_context(cadata=root_pem)
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []
        self.issuers: dict[str, set[str]] = {s: set() for s in SERVICES}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            for service in SERVICES:
                entries = await self.stack.health(service)
                passing = [e for e in entries if all(c["Status"] == "passing" for c in e["Checks"])]
                if not passing:
                    continue
                pick = passing[turn % len(passing)]["Service"]
                await self.one(service, pick["Address"], pick["Port"])
            turn += 1
            await asyncio.sleep(0.02)

    async def one(self, service: str, host: str, port: int) -> None:
        name = f"{service}.service.consul"
        try:
            async with asyncio.timeout(5):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self.trust, server_hostname=name
                )
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                writer.write(
                    f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                raw = await reader.read()
                writer.close()
        except ssl.SSLError as exc:  # a certificate a mesh client rejects: the rotation's fault
            self.counts["failed"] += 1
            self.counts["tls"] += 1
            self.failures.append(f"{service} {host}:{port}: TLS: {exc}")
            return
        except (OSError, TimeoutError) as exc:
            self.counts["failed"] += 1
            self.failures.append(f"{service} {host}:{port}: {type(exc).__name__}: {exc}")
            return
        if not raw.startswith(b"HTTP/1.1 200"):
            self.counts["failed"] += 1
            self.failures.append(f"{service} {host}:{port}: {raw[:40]!r}")
            return
        self.counts["ok"] += 1
        self.issuers[service].add(authority_key_id(x509.load_der_x509_certificate(der)))


def ctl_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "CONSUL_", "MESH_"))}
    env.pop("VAULT_CACERT", None)
    return env | {
        "NOMAD_ADDR": stack.nomad.url,
        "CONSUL_HTTP_ADDR": stack.consul.address,
        "VAULT_ADDR": stack.bao.addr,
        "VAULT_TOKEN": stack.bao.root_token,
        "MESH_ROOT_MOUNT": ROOT,
        "MESH_PKI_MOUNT": INT,
        "MESH_SIDECAR_DRIVER": "raw_exec",
        "MESH_NGINX_BIN": NGINX,
    }


async def rotation_record(stack: Stack) -> RotationState | None:
    client = NomadClient(stack.nomad.url, retry_budget=0.5)
    try:
        var = await NomadVariables(client).get(keys.VAR_ROTATION)
    finally:
        await client.close()
    return RotationState.from_items(var.items) if var is not None else None


async def test_rotate_ca_rolls_three_jobs_resumes_after_sigkill_and_no_request_fails(
    stack: Stack,
) -> None:
    vault = VaultClient(VaultConnection(stack.bao.addr, stack.bao.root_token))
    for name in SERVICES:
        job = meshed_job(name)
        await grant_job(stack.bao, job, CONFIG)  # what the controller does before the register
        await stack.register(job)

    async def all_passing() -> bool:
        for name in SERVICES:
            entries = await stack.health(name)
            ok = [e for e in entries if all(c["Status"] == "passing" for c in e["Checks"])]
            if len(ok) != 2:
                return False
        return True

    await eventually(all_passing, within=40)
    old = await read_issuer(vault, INT)
    root_pem = (await vault.read(f"{ROOT}/cert/ca") or {})["data"]["certificate"]
    poller = Poller(stack, root_pem)
    polling = asyncio.create_task(poller.run())
    await eventually(lambda: asyncio.sleep(0, poller.counts["ok"] >= 6), within=10)

    started = time.monotonic()
    args = [CTL, "rotate-ca", "--yes", "--wave-size", "1", "--poll", "0.2",
            "--wave-timeout", "60"]  # fmt: skip
    first = await asyncio.create_subprocess_exec(
        *args, env=ctl_env(stack), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:

        async def first_wave_done() -> bool:
            record = await rotation_record(stack)
            return record is not None and record.wave >= 1

        await eventually(first_wave_done, within=60, every=0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            first.send_signal(signal.SIGKILL)
        await first.wait()
    killed = await rotation_record(stack)
    assert killed is not None and killed.stage is Stage.ROLLING, killed

    second = await asyncio.create_subprocess_exec(
        *args, "--stale-after", "0", env=ctl_env(stack),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await second.communicate()
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.5)  # a few more requests against the final state
    poller.stop.set()
    await polling

    assert second.returncode == 0, (out.decode(), err.decode())
    done = await rotation_record(stack)
    assert done is not None and done.stage is Stage.DONE and done.id == killed.id
    new = await read_issuer(vault, INT)
    assert new.issuer_id == done.new_issuer != old.issuer_id
    retired = await read_issuer(vault, INT, old.issuer_id)
    assert "issuing-certificates" not in retired.usage and "read-only" in retired.usage
    new_ski = subject_key_id(x509.load_pem_x509_certificate(new.certificate.encode()))
    old_ski = subject_key_id(x509.load_pem_x509_certificate(old.certificate.encode()))
    for name in SERVICES:  # every instance now serves a leaf of the new issuer
        for entry in await stack.health(name):
            svc = entry["Service"]
            with_trust = ssl.create_default_context(cadata=root_pem)
            _, writer = await asyncio.open_connection(
                svc["Address"], svc["Port"], ssl=with_trust,
                server_hostname=f"{name}.service.consul",
            )  # fmt: skip
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            assert authority_key_id(x509.load_der_x509_certificate(der)) == new_ski
        assert poller.issuers[name] == {old_ski, new_ski}  # the client saw both, verified
    took = ((done.finished_at or done.heartbeat) - done.started_at).total_seconds()
    print(
        f"\nrotate-ca of {len(SERVICES)} jobs (2 instances each, killed after wave 1 and "
        f"resumed): {elapsed:.1f}s wall, {took:.1f}s by the record; requests "
        f"ok={poller.counts['ok']} failed={poller.counts['failed']} (tls={poller.counts['tls']})"
        f" {poller.failures[:4]}"
    )
    assert poller.counts["failed"] == 0, poller.failures
    assert poller.counts["ok"] > 100
