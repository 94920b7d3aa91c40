"""The real data plane: inject a job, render the sidecar's templates against real OpenBao with the
devstack renderer, run real nginx with the task's own command line, and talk real TLS to it.

Nothing here is simulated except the Nomad client itself, whose part (ports, task env, template
rendering, `${}` interpolation of the command, SIGHUP on re-render) is played by the helpers
below exactly as REPORT §4 describes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import hvac
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.config.mesh import load_mesh_config
from controller.vault import (
    VaultClient,
    VaultConnection,
    read_issuer,
    root_pem,
)
from crds_equivalent import keys
from crds_equivalent.spec import parse_job_specs
from devstack.consul.probes import http_probe
from devstack.sidecar_render import render_sidecar, render_task_templates
from devstack.template import RenderContext, VaultTarget
from devstack.vault import OpenBao
from devstack.workload_login import workload_token
from reconcilers.injection.inject import inject
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

NGINX = "/usr/sbin/nginx"
HOST = "127.0.0.1"
CN = "web.service.consul"


# ---- a realistic user job, and the Nomad client's part ------------------------------------------


def user_job(**meta: str) -> dict[str, Any]:
    return {
        "ID": "web",
        "Name": "web",
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {"mesh.tls": "true", **meta},
        "TaskGroups": [
            {
                "Name": "frontend",
                "Count": 1,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": "web",
                        "PortLabel": "http",
                        "Checks": [
                            {
                                "Type": "http",
                                "Path": "/health",
                                "Interval": 10_000_000_000,
                                "Timeout": 2_000_000_000,
                            }
                        ],
                    }
                ],
                "Tasks": [
                    {
                        "Name": "app",
                        "Driver": "raw_exec",
                        "Config": {"command": "/srv/web/bin/app", "args": ["${NOMAD_PORT_http}"]},
                        "Resources": {"CPU": 200, "MemoryMB": 128},
                    }
                ],
            }
        ],
    }


@dataclass
class Sidecar:
    proc: asyncio.subprocess.Process
    task: dict[str, Any]
    env: dict[str, str]
    ctx: RenderContext
    task_root: Path
    ports: dict[str, int]

    @property
    def tls_port(self) -> int:
        return self.ports[keys.tls_port_label("http")]

    @property
    def app_port(self) -> int:
        return self.ports["http"]

    async def render_templates(self) -> list[bool]:
        return await render_task_templates(self.task, self.ctx, self.task_root)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGQUIT)  # the task's KillSignal
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, log: Path) -> None:
    async def listening() -> bool:
        if proc.returncode is not None:
            raise AssertionError(f"nginx exited {proc.returncode}: {_read(log)}")
        try:
            _r, w = await asyncio.open_connection(HOST, port)
        except OSError:
            return False
        w.close()
        await w.wait_closed()
        return True

    await eventually(listening, every=0.02, what=f"nginx listening on {port}")


async def start_sidecar(job: dict[str, Any], vault: VaultTarget, alloc_dir: Path) -> Sidecar:
    config = load_mesh_config({"MESH_SIDECAR_DRIVER": "raw_exec", "MESH_NGINX_BIN": NGINX})
    injected = inject(job, parse_job_specs(job), config)
    rendered = await render_sidecar(injected, vault, alloc_dir, host=HOST)
    assert all(rendered.first_render), "first render writes all"
    task, env, task_root, argv = rendered.task, rendered.env, rendered.task_root, rendered.argv
    log = task_root / "nginx.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(task_root),
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    sidecar = Sidecar(proc, task, env, rendered.ctx, task_root, rendered.ports)
    try:
        await _wait_listening(sidecar.tls_port, proc, log)
    except BaseException:
        await sidecar.stop()
        raise
    return sidecar


# ---- clients -------------------------------------------------------------------------------------


def client_ctx(root_file: str, cert_file: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=root_file)  # verification and hostname check on
    if cert_file:
        ctx.load_cert_chain(cert_file)
    return ctx


class Conn:
    """One HTTP/1.1 keep-alive connection over TLS (asyncio streams, no threads)."""

    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w = r, w

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext, name: str = CN) -> Conn:
        r, w = await asyncio.open_connection(HOST, port, ssl=ctx, server_hostname=name)
        return cls(r, w)

    @property
    def peer_serial(self) -> int:
        der = self.w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number

    async def send(self, path: str, method: str = "GET") -> None:
        self.w.write(f"{method} {path} HTTP/1.1\r\nHost: {CN}\r\n\r\n".encode())
        await self.w.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = await self.r.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if x)}
        body = await self.r.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        await self.send(path, method)
        return await self.response()

    async def close(self) -> None:
        self.w.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await self.w.wait_closed()


async def served_chain(port: int) -> list[x509.Certificate]:
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", CN, "-showcerts",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return x509.load_pem_x509_certificates(out)


# ---- fixtures ------------------------------------------------------------------------------------


@dataclass
class Pki:
    vault: VaultTarget
    root_file: str
    root_token: str
    addr: str
    bao: OpenBao


@pytest.fixture
async def pki(openbao: OpenBao, tmp_path: Path) -> Pki:
    # The sidecar's own token, as the Nomad client gets it: a JWT login with job web's identity,
    # after the controller's grant of web's names (its role mesh.default.web).
    token = await workload_token(openbao, "web", ("web.service.consul", "web.service.*.consul"))
    root = await root_pem(VaultClient(VaultConnection(openbao.addr, openbao.root_token)), "pki")
    root_file = tmp_path / "root.pem"
    root_file.write_text(root)
    return Pki(
        VaultTarget(openbao.addr, token), str(root_file), openbao.root_token, openbao.addr, openbao
    )


@dataclass
class Backend:
    release: asyncio.Event
    entered: asyncio.Event
    hits: list[str]


@pytest.fixture
async def http_app() -> AsyncIterator[Callable[[int], Awaitable[Backend]]]:
    runners: list[web.AppRunner] = []

    async def start(port: int) -> Backend:
        backend = Backend(asyncio.Event(), asyncio.Event(), [])

        async def hello(request: web.Request) -> web.Response:
            backend.hits.append(request.raw_path)  # as sent: path and query, unnormalised
            return web.json_response(
                {
                    "path": request.path,
                    "proto": request.headers.get("X-Forwarded-Proto"),
                    "for": request.headers.get("X-Forwarded-For"),
                    "host": request.headers.get("Host"),
                }
            )

        async def slow(request: web.Request) -> web.Response:
            backend.entered.set()
            await backend.release.wait()
            return web.Response(text="slow done")

        app = web.Application()
        app.router.add_get("/slow", slow)
        app.router.add_get("/{tail:.*}", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        runners.append(runner)
        return backend

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def sidecars() -> AsyncIterator[list[Sidecar]]:
    started: list[Sidecar] = []
    yield started
    for s in started:
        await s.stop()


# ---- the tests -----------------------------------------------------------------------------------


async def test_https_verifies_against_the_root_with_the_service_name(
    pki: Pki, http_app, sidecars: list[Sidecar], tmp_path: Path
) -> None:
    sc = await start_sidecar(user_job(), pki.vault, tmp_path / "alloc")
    sidecars.append(sc)
    await http_app(sc.app_port)
    ctx = client_ctx(pki.root_file)
    for name in (CN, "web.service.dc1.consul"):
        conn = await Conn.open(sc.tls_port, ctx, name)
        status, _, body = await conn.get("/hello")
        assert status == 200
        assert b'"proto": "https"' in body and b'"path": "/hello"' in body
        assert conn.w.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        await conn.close()
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        await Conn.open(sc.tls_port, ctx, "db.service.consul")
    key = sc.task_root / "secrets" / "mesh-tls.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
async def test_old_tls_versions_are_refused_by_the_server(
    pki: Pki, http_app, sidecars: list[Sidecar], tmp_path: Path, version: str
) -> None:
    sc = await start_sidecar(user_job(), pki.vault, tmp_path / "alloc")
    sidecars.append(sc)
    await http_app(sc.app_port)

    def legacy(max_version: ssl.TLSVersion) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(pki.root_file)
        ctx.set_ciphers(
            "ALL:@SECLEVEL=0"
        )  # let the client offer old suites: the SERVER must refuse
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # old versions on purpose
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = max_version
        return ctx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = getattr(ssl.TLSVersion, version)
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        await Conn.open(sc.tls_port, legacy(old))
    ok = await Conn.open(sc.tls_port, legacy(ssl.TLSVersion.TLSv1_2))  # same client, TLS 1.2
    assert (await ok.get("/"))[0] == 200
    await ok.close()


async def test_served_chain_is_leaf_then_intermediate(
    pki: Pki, http_app, sidecars: list[Sidecar], tmp_path: Path
) -> None:
    sc = await start_sidecar(user_job(), pki.vault, tmp_path / "alloc")
    sidecars.append(sc)
    chain = await served_chain(sc.tls_port)
    admin = VaultClient(VaultConnection(pki.addr, pki.root_token))
    inter = x509.load_pem_x509_certificate(
        (await read_issuer(admin, "pki_int")).certificate.encode()
    )
    root = x509.load_pem_x509_certificate(_read(Path(pki.root_file)).encode())
    # Exactly leaf + intermediate: the root is the client's trust anchor and is never sent,
    # although pki_int knows it (bootstrap imports it so the mount's ca_chain reaches it).
    assert len(chain) == 2, [c.subject.rfc4514_string() for c in chain]
    leaf, served_inter = chain
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == CN
    assert served_inter == inter
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    assert root not in chain
    on_disk = x509.load_pem_x509_certificates(
        (sc.task_root / "secrets" / "mesh-tls.pem").read_bytes()
    )
    assert on_disk == [leaf, inter], "the one cert file holds leaf + intermediate (+ key)"


async def test_reissue_and_sighup_rotate_while_an_open_request_finishes(
    pki: Pki, http_app, sidecars: list[Sidecar], tmp_path: Path
) -> None:
    sc = await start_sidecar(user_job(), pki.vault, tmp_path / "alloc")
    sidecars.append(sc)
    backend = await http_app(sc.app_port)
    ctx = client_ctx(pki.root_file)
    old = await Conn.open(sc.tls_port, ctx)
    assert (await old.get("/warm"))[0] == 200, "keep-alive connection is established"
    old_serial = old.peer_serial
    await old.send("/slow")
    await asyncio.wait_for(backend.entered.wait(), 5)

    # The Nomad client re-renders at 90 % of the leaf's life: pkiCert re-issues, file changes.
    cert = x509.load_pem_x509_certificate((sc.task_root / "secrets" / "mesh-tls.pem").read_bytes())
    life = cert.not_valid_after_utc.timestamp() - cert.not_valid_before_utc.timestamp()
    rotate_at = cert.not_valid_before_utc.timestamp() + 0.9 * life
    sc.ctx.clock = lambda: rotate_at
    changed = await sc.render_templates()
    assert changed == [True, False], "only the certificate file changed"
    os.kill(sc.proc.pid, signal.SIGHUP)  # change_mode = signal, change_signal = SIGHUP

    deadline = time.monotonic() + 10
    while True:
        fresh = await Conn.open(sc.tls_port, ctx)
        serial = fresh.peer_serial
        status = (await fresh.get("/after"))[0]
        await fresh.close()
        if serial != old_serial:
            break
        assert time.monotonic() < deadline, "nginx never served the re-issued certificate"
        await asyncio.sleep(0.05)
    assert status == 200

    backend.release.set()
    status, _, body = await asyncio.wait_for(old.response(), 10)
    assert (status, body) == (200, b"slow done"), "the in-flight request on the old worker finished"
    assert old.peer_serial == old_serial
    await old.close()
    assert sc.proc.returncode is None, "reload, not restart"


async def test_the_kill_signal_stops_nginx_gracefully_and_an_open_request_finishes(
    pki: Pki,
    http_app: Callable[[int], Awaitable[Backend]],
    sidecars: list[Sidecar],
    tmp_path: Path,
) -> None:
    sc = await start_sidecar(user_job(), pki.vault, tmp_path / "alloc")
    sidecars.append(sc)
    backend = await http_app(sc.app_port)
    ctx = client_ctx(pki.root_file)
    old = await Conn.open(sc.tls_port, ctx)
    await old.send("/slow")
    await asyncio.wait_for(backend.entered.wait(), 5)

    # What a Nomad client sends the task process when it stops the allocation.
    os.kill(sc.proc.pid, signal.Signals[sc.task["KillSignal"]])

    async def refused() -> bool:
        return str(await _status_or_refused(sc.tls_port, ctx)).startswith("refused")

    await eventually(refused, what="nginx refusing connections after its kill signal")
    assert sc.proc.returncode is None, "nginx waits for the open request"

    backend.release.set()
    status, _, body = await asyncio.wait_for(old.response(), 10)
    assert (status, body) == (200, b"slow done"), "the in-flight request finished"
    assert await asyncio.wait_for(sc.proc.wait(), 10) == 0


def _foreign_client_cert(tmp_path: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "intruder.service.consul")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "foreign.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


async def _status_or_refused(
    port: int, ctx: ssl.SSLContext, path: str = "/", method: str = "GET"
) -> int | str:
    try:
        conn = await Conn.open(port, ctx)
        status = (await conn.get(path, method))[0]
        await conn.close()
        return status
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as e:
        return f"refused: {type(e).__name__}"


async def test_mtls_requires_a_mesh_client_certificate(
    pki: Pki, http_app, sidecars: list[Sidecar], tmp_path: Path
) -> None:
    sc = await start_sidecar(user_job(**{"mesh.tls.mtls": "true"}), pki.vault, tmp_path / "alloc")
    sidecars.append(sc)
    backend = await http_app(sc.app_port)
    # nginx completes the handshake and answers 400 ("No required SSL certificate was sent" /
    # "The SSL certificate error"); nothing reaches the app.
    no_cert = await _status_or_refused(sc.tls_port, client_ctx(pki.root_file))
    assert no_cert == 400, no_cert
    foreign = await _status_or_refused(
        sc.tls_port, client_ctx(pki.root_file, _foreign_client_cert(tmp_path))
    )
    assert foreign == 400, foreign
    assert backend.hits == [], "refused callers never reach the app"

    # A caller in the mesh holds a leaf from the same role, as its own sidecar's cert file does:
    # leaf + intermediate (no root) + key. Its chain must reach the root in the trust bundle.
    caller = await workload_token(pki.bao, "api", ("api.service.consul",))
    issued = hvac.Client(url=pki.addr, token=caller).write_data(
        "pki_int/issue/mesh.default.api",
        data={"common_name": "api.service.consul", "ttl": "1h", "remove_roots_from_chain": True},
    )["data"]
    assert len(issued["ca_chain"]) == 1
    mine = tmp_path / "api.pem"
    mine.write_text(
        "\n".join([issued["certificate"], *issued["ca_chain"], issued["private_key"]]) + "\n"
    )
    assert await _status_or_refused(sc.tls_port, client_ctx(pki.root_file, str(mine))) == 200
    # A client that sends its leaf alone is completed from the bundle's intermediate.
    bare = tmp_path / "api-leaf-only.pem"
    bare.write_text(issued["certificate"] + "\n" + issued["private_key"] + "\n")
    assert await _status_or_refused(sc.tls_port, client_ctx(pki.root_file, str(bare))) == 200
    assert backend.hits == ["/", "/"]

    # The trust bundle is its own public file: intermediate then root; the served chain is
    # still leaf + intermediate.
    bundle_file = sc.task_root / "local" / "mesh-ca.pem"
    assert oct(bundle_file.stat().st_mode & 0o777) == "0o644"
    bundle = x509.load_pem_x509_certificates(bundle_file.read_bytes())
    root = x509.load_pem_x509_certificate(_read(Path(pki.root_file)).encode())
    assert len(bundle) == 2 and bundle[1] == root
    bundle[0].verify_directly_issued_by(root)
    chain = await served_chain(sc.tls_port)
    assert len(chain) == 2 and chain[1] == bundle[0]


async def _mesh_client_cert(pki: Pki, tmp_path: Path) -> str:
    """A caller's own sidecar file: leaf + intermediate + key from its own job's role."""
    caller = await workload_token(pki.bao, "api", ("api.service.consul",))
    issued = hvac.Client(url=pki.addr, token=caller).write_data(
        "pki_int/issue/mesh.default.api",
        data={"common_name": "api.service.consul", "ttl": "1h", "remove_roots_from_chain": True},
    )["data"]
    path = tmp_path / "caller.pem"
    path.write_text(
        "\n".join([issued["certificate"], *issued["ca_chain"], issued["private_key"]]) + "\n"
    )
    return str(path)


async def test_mtls_consul_check_is_green_and_only_the_check_request_goes_without_a_cert(
    pki: Pki, http_app, sidecars: list[Sidecar], tmp_path: Path
) -> None:
    job = user_job(**{"mesh.tls.mtls": "true"})
    sc = await start_sidecar(job, pki.vault, tmp_path / "alloc")
    sidecars.append(sc)
    backend = await http_app(sc.app_port)

    # The check exactly as Nomad hands it to Consul (createCheckReg): https on the TLS port,
    # the rewritten TLSServerName/TLSSkipVerify, no client certificate. The twin's runner sends
    # it for real; the mesh root is given as the agent's CA, so it passes with verification on.
    config = load_mesh_config({"MESH_SIDECAR_DRIVER": "raw_exec", "MESH_NGINX_BIN": NGINX})
    injected = inject(job, parse_job_specs(job), config)
    check = injected["TaskGroups"][0]["Services"][0]["Checks"][0]
    assert check["Protocol"] == "https"
    defn = {
        "HTTP": f"https://{HOST}:{sc.tls_port}{check['Path']}",
        "TLSServerName": check["TLSServerName"],
        "Timeout": 2_000_000_000,
    }
    async with aiohttp.ClientSession() as session:
        for skip in (True, False):
            status, output = await http_probe(
                session, {**defn, "TLSSkipVerify": skip}, cafile=pki.root_file
            )
            assert status == "passing", output
            assert '"path": "/health"' in output, "the answer is the app's own health"
    assert backend.hits == ["/health", "/health"]

    # Without a certificate: the check's exact request reaches the app, nothing else does.
    root_only = client_ctx(pki.root_file)
    assert await _status_or_refused(sc.tls_port, root_only, "/health") == 200
    for path in ("/", "/healthz", "/health/", "/health/x", "/api/health"):
        assert await _status_or_refused(sc.tls_port, root_only, path) == 400, path
    assert await _status_or_refused(sc.tls_port, root_only, "/health", "POST") == 403
    # nginx matches the normalised path, but the app gets the check's URI as written, never
    # the caller's spelling or query: an app that routes "/x/../health" to "/x/" learns nothing.
    assert await _status_or_refused(sc.tls_port, root_only, "/x/../health?dump=1") == 200
    assert backend.hits == ["/health", "/health", "/health", "/health"]

    # A foreign certificate is refused everywhere, the health path included.
    foreign = client_ctx(pki.root_file, _foreign_client_cert(tmp_path))
    for path in ("/", "/health"):
        assert await _status_or_refused(sc.tls_port, foreign, path) == 400, path
    assert len(backend.hits) == 4, "refused callers never reach the app"

    # A mesh caller reaches everything, the query string included.
    mine = client_ctx(pki.root_file, await _mesh_client_cert(pki, tmp_path))
    for path in ("/", "/api/orders?id=7", "/health"):
        assert await _status_or_refused(sc.tls_port, mine, path) == 200, path
    assert backend.hits[4:] == ["/", "/api/orders?id=7", "/health"]


async def test_tcp_mode_carries_raw_tcp(pki: Pki, sidecars: list[Sidecar], tmp_path: Path) -> None:
    sc = await start_sidecar(
        user_job(**{"mesh.tls.protocol": "tcp"}), pki.vault, tmp_path / "alloc"
    )
    sidecars.append(sc)
    assert "stream {" in (sc.task_root / "local" / "nginx.conf").read_text()

    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while line := await r.readline():
            w.write(b"echo:" + line)
            await w.drain()
        w.close()

    server = await asyncio.start_server(echo, HOST, sc.app_port)
    try:
        r, w = await asyncio.open_connection(
            HOST, sc.tls_port, ssl=client_ctx(pki.root_file), server_hostname=CN
        )
        for msg in (b"\x00binary\xff\n", b"PING\n"):
            w.write(msg)
            await w.drain()
            assert await asyncio.wait_for(r.readline(), 5) == b"echo:" + msg
        w.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await w.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
