"""Templates in allocations against the real OpenBao, behind a real nginx TLS sidecar.

A hand-written job (prestart sidecar nginx with one pkiCert template holding cert + chain + key,
and an nginx.conf template) and the job produced by `reconcilers.injection.inject.inject()` with the
raw_exec sidecar: HTTPS through the sidecar verifies against the OpenBao root for
`web.service.consul`, a short leaf TTL re-issues, nginx gets SIGHUP (same master, new serial),
a change_mode=restart template restarts its task, and the Consul https check passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig, SidecarDriver
from crds_equivalent.spec import parse_job_specs
from devstack.vault import OpenBao
from reconcilers.injection.inject import inject
from tests.support.executor_stack import (
    NGINX,
    NS,
    Stack,
    app_task,
    events,
    grant_job,
    grant_role,
    running_stack,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(80)

CN = "web.service.consul"
TTL = "10s"  # with OpenBao's 30 s backdating the leaf renews ~6 s after issue


@pytest.fixture
async def stack(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(openbao, tmp_path / "data") as s:
        yield s


NGINX_CONF = """
worker_processes 1;
pid {{ env "NOMAD_TASK_DIR" }}/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen {{ env "NOMAD_ADDR_https" }} ssl;
    ssl_certificate {{ env "NOMAD_SECRETS_DIR" }}/bundle.pem;
    ssl_certificate_key {{ env "NOMAD_SECRETS_DIR" }}/bundle.pem;
    location / { proxy_pass http://{{ env "NOMAD_ADDR_http" }}; }
  }
}
"""

ROLE_PATH = "pki_int/issue/mesh.default.web"  # the job's own role (granted by the tests)
BUNDLE = (
    '{{ with pkiCert "' + ROLE_PATH + '" "common_name=' + CN + '" (env "IP_SANS") "ttl=' + TTL
    + '" }}{{ .Cert }}\n{{ range .CAChain }}{{ . }}\n{{ end }}{{ .Key }}\n{{ end }}'
)  # fmt: skip


def template(dest: str, body: str, mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "DestPath": dest,
        "EmbeddedTmpl": body,
        "ChangeMode": mode,
        "Splay": NS // 5,
        **extra,
    }


def hand_written_job() -> dict[str, Any]:
    app = app_task(
        Vault={},  # its template issues from Vault: Nomad gives it a token only through this
        Templates=[
            template(
                "local/leaf.pem",
                '{{ with pkiCert "'
                + ROLE_PATH
                + '" "common_name=app.service.consul" "ttl='
                + TTL
                + '" }}{{ .Cert }}{{ end }}',
                "restart",
            )
        ],
    )
    sidecar = {
        "Name": "tls",
        "Driver": "raw_exec",
        "Lifecycle": {"Hook": "prestart", "Sidecar": True},
        "Config": {
            "command": NGINX,
            "args": [
                "-p",
                "${NOMAD_TASK_DIR}/",
                "-e",
                "stderr",
                "-c",
                "${NOMAD_TASK_DIR}/nginx.conf",
                "-g",
                "daemon off;",
            ],
        },
        "Env": {"IP_SANS": "ip_sans=${NOMAD_IP_https}"},
        # vault.role names a JWT auth role; none given: the cluster's default (nomad-workloads),
        # which grants the workload policy (devstack.vault.configure_workload_identity_auth):
        # issue from the job's own role (mesh.default.web, granted by the test as the
        # controller would)
        "Vault": {"Env": False, "DisableFile": True},
        "KillSignal": "SIGQUIT",
        "KillTimeout": 2 * NS,
        "Templates": [
            template("secrets/bundle.pem", BUNDLE, "signal", ChangeSignal="SIGHUP", Perms="0600"),
            template("local/nginx.conf", NGINX_CONF, "signal", ChangeSignal="SIGHUP"),
        ],
    }
    return {
        "ID": "web",
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 1,
                "Networks": [{"DynamicPorts": [{"Label": "http"}, {"Label": "https"}]}],
                "Services": [
                    {
                        "Name": "web",
                        "PortLabel": "https",
                        "Checks": [
                            {
                                "Name": "tls",
                                "Type": "http",
                                "Protocol": "https",
                                "Path": "/",
                                "TLSSkipVerify": True,
                                "Interval": NS,
                                "Timeout": NS,
                            }
                        ],
                    }
                ],
                "Tasks": [app, sidecar],
            }
        ],
    }


async def https_get(host: str, port: int, trust: ssl.SSLContext) -> tuple[int, str]:
    """(serial of the served leaf, response body) over a verified TLS connection."""
    reader, writer = await asyncio.open_connection(host, port, ssl=trust, server_hostname=CN)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        serial = x509.load_der_x509_certificate(der).serial_number
        writer.write(f"GET / HTTP/1.1\r\nHost: {CN}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
    return serial, raw.decode(errors="replace").split("\r\n\r\n", 1)[-1]


async def try_https(host: str, port: int, trust: ssl.SSLContext) -> tuple[int, str] | None:
    """(leaf serial, the app's answer), or None until nginx serves TLS AND the app answers
    (nginx and the app start together; on a loaded machine nginx may answer 502 first)."""
    try:
        got = await https_get(host, port, trust)
    except (OSError, ssl.SSLError):
        return None
    return got if got[1].startswith("pid=") else None


def port_of(alloc: dict[str, Any], label: str) -> tuple[str, int]:
    for port in alloc["AllocatedResources"]["Shared"]["Ports"]:
        if port["Label"] == label:
            return port["HostIP"], int(port["Value"])
    raise AssertionError(f"no port {label}")


async def running(stack: Stack, job_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        allocs = await stack.allocs(job_id)
        states = [list((a.get("TaskStates") or {}).values()) for a in allocs]
        live = [a for a, s in zip(allocs, states, strict=True) if s and _all_running(s)]
        return live[0] if live else None

    result: dict[str, Any] = await eventually(probe, within=20.0)
    return result


def _all_running(states: list[dict[str, Any]]) -> bool:
    return all(s["State"] == "running" for s in states)


async def https_check_passing(stack: Stack, service: str) -> bool:
    checks = [
        c for e in await stack.health(service) for c in e["Checks"] if c["ServiceName"] == service
    ]
    return bool(checks) and all(c["Status"] == "passing" for c in checks)


async def test_hand_written_sidecar_serves_verified_tls_and_rotates_with_sighup(
    stack: Stack,
) -> None:
    await grant_role(stack.bao, "mesh.default.web", ("web.service.consul", "app.service.consul"))
    await stack.register(hand_written_job())
    alloc = await running(stack, "web")
    aid = alloc["ID"]
    host, port = port_of(alloc, "https")
    trust = stack.trust()
    serial, body = await eventually(lambda: try_https(host, port, trust), within=20.0)
    app_pid = stack.driver.pid(aid, "app")
    nginx_pid = stack.driver.pid(aid, "tls")
    assert body == f"pid={app_pid} hups=0 task=app"

    secrets = Path(stack.nomad.client.alloc_root) / aid / "tls" / "secrets"
    assert (secrets / "bundle.pem").stat().st_mode & 0o777 == 0o600
    leaf = x509.load_pem_x509_certificates((secrets / "bundle.pem").read_bytes())[0]
    ip_sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in ip_sans.get_values_for_type(x509.IPAddress)] == [host]
    assert await eventually(lambda: https_check_passing(stack, "web"), within=20.0)

    async def rotated() -> tuple[int, str] | None:
        got = await try_https(host, port, trust)
        return got if got is not None and got[0] != serial else None

    new_serial, _ = await eventually(rotated, within=25)
    assert new_serial != serial
    assert stack.driver.pid(aid, "tls") == nginx_pid  # reloaded by SIGHUP, not restarted

    async def app_restarted_and_tls_signaled() -> dict[str, Any] | None:
        # The client syncs task events in batches: poll until both have reached the server.
        a = await stack.alloc("web")
        signaled = "Signaling" in events(a, "tls")
        return a if a["TaskStates"]["app"]["Restarts"] >= 1 and signaled else None

    latest = await eventually(app_restarted_and_tls_signaled, within=20.0)
    assert stack.driver.pid(aid, "app") not in (None, app_pid)
    signals = [e for e in latest["TaskStates"]["tls"]["Events"] if e["Type"] == "Signaling"]
    assert signals[0]["TaskSignal"] == "SIGHUP"
    assert signals[0]["DisplayMessage"] == "Template re-rendered"
    restart = next(
        e for e in latest["TaskStates"]["app"]["Events"] if e["Type"] == "Restart Signaled"
    )
    assert restart["RestartReason"] == "Template with change_mode restart re-rendered"
    assert "Restart Signaled" not in events(latest, "tls")
    assert await eventually(lambda: https_check_passing(stack, "web"), within=20.0)


def meshed_user_job() -> dict[str, Any]:
    return {
        "ID": "shop",
        "Name": "shop",
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 1,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": "web",
                        "PortLabel": "http",
                        "Checks": [
                            {"Type": "http", "Path": "/", "Interval": NS, "Timeout": NS},
                        ],
                    }
                ],
                "Tasks": [app_task()],
            }
        ],
    }


def shorten(job: dict[str, Any], ttl: str) -> dict[str, Any]:
    """The injected sidecar, with a seconds-long leaf TTL and splay so a test sees a renewal
    (mesh.tls.ttl accepts no less than 1h, which is right for clusters and slow for tests)."""
    for group in job["TaskGroups"]:
        for task in group["Tasks"]:
            for tmpl in task.get("Templates") or []:
                tmpl["EmbeddedTmpl"] = re.sub(r'"ttl=\d+s"', f'"ttl={ttl}"', tmpl["EmbeddedTmpl"])
                tmpl["Splay"] = NS // 5
    return job


async def test_injected_raw_exec_sidecar_serves_tls_passes_check_and_rotates(stack: Stack) -> None:
    user = meshed_user_job()
    config = MeshConfig(sidecar_driver=SidecarDriver.RAW_EXEC, nginx_bin=NGINX)
    job = shorten(inject(user, parse_job_specs(user), config), TTL)
    await grant_job(stack.bao, user, config)
    await stack.register(job)
    alloc = await running(stack, "shop")
    aid = alloc["ID"]
    host, port = port_of(alloc, keys.tls_port_label("http"))
    trust = stack.trust()
    serial, body = await eventually(lambda: try_https(host, port, trust), within=20.0)
    assert body == f"pid={stack.driver.pid(aid, 'app')} hups=0 task=app"
    [entry] = await eventually(lambda: stack.health("web"), within=20.0)
    assert entry["Service"]["Port"] == port  # registered on the TLS port
    assert await eventually(lambda: https_check_passing(stack, "web"), within=20.0)
    nginx_pid = stack.driver.pid(aid, keys.SIDECAR_TASK)

    async def rotated() -> tuple[int, str] | None:
        got = await try_https(host, port, trust)
        return got if got is not None and got[0] != serial else None

    await eventually(rotated, within=25)
    assert stack.driver.pid(aid, keys.SIDECAR_TASK) == nginx_pid

    async def signaled() -> bool:
        return "Signaling" in events(await stack.alloc("shop"), keys.SIDECAR_TASK)

    assert await eventually(signaled, within=20.0)
    leaf_file = Path(stack.nomad.client.alloc_root) / aid / keys.SIDECAR_TASK / "secrets"
    leaf = x509.load_pem_x509_certificates(next(leaf_file.glob("*.pem")).read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "web.service.dc1.consul" in names.get_values_for_type(x509.DNSName)  # ${NOMAD_DC}
