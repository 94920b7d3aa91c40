"""Workload tokens the way a Nomad 1.10 client gets them, for tests and the bench without a
whole cluster.

A Nomad keyring (the twin's signer, devstack.nomad.identity) serves its JWKS on a loopback
port; the product's bootstrap points Vault's JWT auth method at it (as `controllerctl
bootstrap-pki --jwks-url` does on a real cluster); ``login`` then signs a task's
``vault_default`` identity with Nomad's claims and logs in at ``auth/jwt-nomad/login`` with the
mesh's role, exactly the request the client's vault hook makes. The token carries whatever the
role and the templated workload policy give that identity, nothing more.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from controller.vault import (
    CONTROLLER_POLICY,
    PkiLayout,
    VaultClient,
    VaultConnection,
    bootstrap_pki,
)
from controller.vault.grants import VaultCertGrants
from controller.vault.workload_auth import JWT_MOUNT, JWT_ROLE, WorkloadAuth
from devstack.nomad.identity import JWKS_PATH, WorkloadIdentities
from devstack.vault import OpenBao

VAULT_IDENTITY = {"Name": "vault_default", "Audience": ["vault.io"]}


@dataclass
class IdentityIssuer:
    bao: OpenBao
    identities: WorkloadIdentities

    def jwt(self, namespace: str, job_id: str, group: str = "g", task: str = "t") -> str:
        alloc = {
            "ID": str(uuid.uuid4()),
            "Namespace": namespace,
            "TaskGroup": group,
            "Job": {"ID": job_id, "Namespace": namespace},
        }
        return self.identities.sign(
            alloc, {"Name": task, "Vault": {"Role": JWT_ROLE}}, VAULT_IDENTITY
        )

    async def login(self, namespace: str, job_id: str, group: str = "g", task: str = "t") -> str:
        """A task's Vault token: PUT auth/jwt-nomad/login with its signed identity. (Async:
        Vault fetches the JWKS from this process's own server while the login waits.)"""
        body = {"role": JWT_ROLE, "jwt": self.jwt(namespace, job_id, group, task)}
        ctx: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.bao.ca_cert) if self.bao.ca_cert else True
        )
        url = f"{self.bao.addr}/v1/auth/{JWT_MOUNT}/login"
        async with aiohttp.ClientSession() as http, http.put(url, json=body, ssl=ctx) as resp:
            answer = await resp.json(content_type=None)
            assert resp.status == 200, answer
            return str(answer["auth"]["client_token"])


@asynccontextmanager
async def identity_issuer(
    bao: OpenBao, layout: PkiLayout | None = None
) -> AsyncIterator[IdentityIssuer]:
    """The mesh PKI bootstrapped with the JWT auth method trusting a fresh Nomad keyring."""
    identities = WorkloadIdentities()
    app = web.Application()

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(identities.jwks())

    app.router.add_get(JWKS_PATH, jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        auth = WorkloadAuth(jwks_url=f"http://127.0.0.1:{port}{JWKS_PATH}")
        async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as root:
            await bootstrap_pki(root, layout, workload_auth=auth)
        yield IdentityIssuer(bao, identities)
    finally:
        await runner.cleanup()


async def workload_token(
    bao: OpenBao, job_id: str, names: tuple[str, ...], namespace: str = "default"
) -> str:
    """A task token of job ``job_id`` after the controller's grant of ``names`` to that job
    (role ``mesh.<namespace>.<job_id>``): what the job's sidecar holds on a real cluster."""
    layout = PkiLayout()
    async with identity_issuer(bao, layout) as issuer:
        async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as root:
            await VaultCertGrants(root, layout).grant(f"{layout.role}.{namespace}.{job_id}", names)
        return await issuer.login(namespace, job_id)


@contextmanager
def static_jwks(identities: WorkloadIdentities | None = None) -> Iterator[str]:
    """A Nomad-like address (threaded, for synchronous CLI tests) serving a keyring's JWKS at
    /.well-known/jwks.json; yields the address, as NOMAD_ADDR would name it."""
    body = json.dumps((identities or WorkloadIdentities()).jwks()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == JWKS_PATH
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if found else b"{}")

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def controller_vault_env(bao: OpenBao) -> dict[str, str]:
    """The mesh PKI and a mesh-controller token for a `controller run` process (the bench, the
    chaos scenarios): meshing a job grants it its per-job PKI role in Vault before the
    register, so the controller needs a real Vault."""
    async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as root:
        await bootstrap_pki(root)
        made = await root.write("auth/token/create", {"policies": [CONTROLLER_POLICY], "ttl": "2h"})
    env = {"VAULT_ADDR": bao.addr, "VAULT_TOKEN": str((made or {})["auth"]["client_token"])}
    if bao.ca_cert:
        env["VAULT_CACERT"] = bao.ca_cert
    return env
