"""Identity-bound leaves against real OpenBao, with the sidecar's OWN token.

The injected sidecar of job ``alpha`` logs in at the JWT auth method with its workload identity
(role ``mesh-workload``, made by the product's bootstrap) and Nomad's client writes the token
to ``secrets/vault_token``. The test reads that file and asks OpenBao directly: the token issues
leaves for alpha's own names, is refused another job's service name (Vault's own words), cannot
read or change any role, and ``sys/capabilities-self`` shows nothing beyond the policy. When
alpha's grant is withdrawn (the job stops being meshed), its own role is gone too. A job that
declares an external ``mesh.tls.sans`` name gets it (and its IP SAN) in the leaf its sidecar
issues; another service's mesh name is refused at plan time and by Vault.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from controller.vault import VaultClient, VaultConnection, pki_layout
from controller.vault.grants import VaultCertGrants
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig, SidecarDriver
from crds_equivalent.spec import parse_job_specs
from devstack.executor.tokenfile import process_umask
from devstack.vault import OpenBao
from reconcilers.injection.inject import inject
from reconcilers.injection.plan import Invalid, plan_job
from tests.support.executor_stack import NGINX, Stack, app_task, grant_job, running_stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

CONFIG = MeshConfig(sidecar_driver=SidecarDriver.RAW_EXEC, nginx_bin=NGINX)
OWN_ROLE = "pki_int/issue/mesh.default.alpha"
OTHER_ROLE = "pki_int/issue/mesh.default.beta"


@pytest.fixture
async def stack(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(openbao, tmp_path / "data") as s:
        yield s


def meshed(job_id: str, service: str) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": service, "PortLabel": "http"}],
                "Tasks": [app_task()],
            }
        ],
    }


async def vault(
    stack: Stack, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=stack.bao.ca_cert) if stack.bao.ca_cert else None
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            f"{stack.bao.addr}/v1/{path}",
            json=body,
            headers={"X-Vault-Token": token},
            ssl=ctx,
        ) as resp,
    ):
        data = await resp.json(content_type=None) if resp.content_length != 0 else None
        return resp.status, data or {}


def files_holding(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret``."""
    return [f for f in root.rglob("*") if f.is_file() and secret.encode() in f.read_bytes()]


def denied(status: int, body: dict[str, Any]) -> bool:
    """Vault's refusal by policy: 403 and "permission denied" (OpenBao wraps it as
    "1 error occurred:\n\t* permission denied\n\n")."""
    return status == 403 and any("permission denied" in e for e in body.get("errors") or [])


async def sidecar_token(stack: Stack, job_id: str) -> tuple[Path, str]:
    """The token Nomad's client wrote into the sidecar's secrets/ once it logged in."""

    async def written() -> Path | None:
        allocs = await stack.allocs(job_id)
        if not allocs:
            return None
        path = (
            Path(stack.nomad.client.alloc_root)
            / allocs[0]["ID"]
            / keys.SIDECAR_TASK
            / "secrets"
            / "vault_token"
        )
        return path if path.exists() and path.read_text() else None

    path = await eventually(written, within=30.0)
    return path, path.read_text()


async def test_sidecar_token_issues_only_its_own_jobs_names(stack: Stack) -> None:
    alpha, beta = meshed("alpha", "alpha"), meshed("beta", "beta")
    own = await grant_job(stack.bao, alpha, CONFIG)
    await grant_job(stack.bao, beta, CONFIG)  # another job's role exists beside it
    assert own.role == "mesh.default.alpha"
    assert own.names == ("alpha.service.consul", "alpha.service.*.consul")
    await stack.register(inject(alpha, parse_job_specs(alpha), CONFIG))
    path, token = await sidecar_token(stack, "alpha")

    # Nomad's client writes secrets/vault_token with 0666 under its umask, in the task's
    # secrets directory; the twin's task directories keep secrets/ 0700.
    assert path.stat().st_mode & 0o777 == 0o666 & ~process_umask()
    assert path.parent.stat().st_mode & 0o777 == 0o700

    # The token is the identity's, never the root token: nothing the client wrote for any
    # task (rendered templates, token files, env, logs) carries the root token.
    status, body = await vault(stack, token, "GET", "auth/token/lookup-self")
    assert status == 200, body
    assert body["data"]["path"] == "auth/jwt-nomad/login"
    assert body["data"]["policies"] == ["default", "mesh-workload"]
    assert body["data"]["meta"]["nomad_job_id"] == "alpha"
    alloc_root = Path(stack.nomad.client.alloc_root)
    await eventually(lambda: any(alloc_root.rglob("mesh-tls.pem")), what="leaf rendered")
    assert files_holding(alloc_root, stack.bao.root_token) == []

    status, body = await vault(
        stack,
        token,
        "POST",
        OWN_ROLE,
        {"common_name": "alpha.service.consul", "alt_names": "alpha.service.dc1.consul"},
    )
    assert status == 200, body
    assert body["data"]["certificate"].startswith("-----BEGIN CERTIFICATE-----")

    # Another job's service name, from its own role: the role refuses it (400).
    status, body = await vault(
        stack, token, "POST", OWN_ROLE, {"common_name": "beta.service.consul"}
    )
    assert status == 400
    assert body["errors"] == ["common name beta.service.consul not allowed by this role"]
    status, body = await vault(
        stack,
        token,
        "POST",
        OWN_ROLE,
        {"common_name": "alpha.service.consul", "alt_names": "beta.service.consul"},
    )
    assert (status, body["errors"]) == (
        400,
        ["subject alternate name beta.service.consul not allowed by this role"],
    )

    # The other job's role, and the shared mesh role: the policy does not reach them (403).
    for path_ in (OTHER_ROLE, "pki_int/issue/mesh"):
        status, body = await vault(
            stack, token, "POST", path_, {"common_name": "beta.service.consul"}
        )
        assert denied(status, body), (path_, status, body)

    # No role can be read, changed, created, deleted or listed with it.
    for method, role_path, payload in (
        ("GET", "pki_int/roles/mesh.default.alpha", None),
        ("POST", "pki_int/roles/mesh.default.alpha", {"allowed_domains": ["beta.service.consul"]}),
        ("POST", "pki_int/roles/mesh.default.evil", {"allowed_domains": ["beta.service.consul"]}),
        ("DELETE", "pki_int/roles/mesh.default.beta", None),
        ("LIST", "pki_int/roles", None),
    ):
        status, body = await vault(stack, token, method, role_path, payload)
        assert denied(status, body), (method, role_path, status, body)

    # What the token may do, as an operator would ask (`vault token capabilities`).
    asked = [
        OWN_ROLE,
        OTHER_ROLE,
        "pki_int/issue/mesh",
        "pki_int/roles/mesh.default.alpha",
        "pki_int/cert/ca_chain",
        "pki/root/sign-intermediate",
        "sys/policies/acl/mesh-workload",
    ]
    status, body = await vault(stack, token, "POST", "sys/capabilities-self", {"paths": asked})
    assert status == 200, body
    assert {p: body[p] for p in asked} == {
        OWN_ROLE: ["update"],
        OTHER_ROLE: ["deny"],
        "pki_int/issue/mesh": ["deny"],
        "pki_int/roles/mesh.default.alpha": ["deny"],
        "pki_int/cert/ca_chain": ["read"],
        "pki/root/sign-intermediate": ["deny"],
        "sys/policies/acl/mesh-workload": ["deny"],
    }

    # The job stops being meshed: the controller withdraws the grant, and the same token can
    # no longer issue even its own names.
    root = VaultClient(VaultConnection(stack.bao.addr, stack.bao.root_token))
    await VaultCertGrants(root, pki_layout(CONFIG)).withdraw(own.role)
    status, body = await vault(
        stack, token, "POST", OWN_ROLE, {"common_name": "alpha.service.consul"}
    )
    assert status == 400
    assert body["errors"] == ["unknown role: mesh.default.alpha"]


def leaf_names(pem: bytes) -> tuple[list[str], list[str]]:
    """(DNS SANs, IP SANs) of the first certificate in a rendered leaf file."""
    leaf = x509.load_pem_x509_certificates(pem)[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sans.get_values_for_type(x509.DNSName), [
        str(ip) for ip in sans.get_values_for_type(x509.IPAddress)
    ]


async def test_a_declared_external_san_issues_and_another_services_mesh_name_does_not(
    stack: Stack,
) -> None:
    gamma = meshed("gamma", "gamma")
    gamma["TaskGroups"][0]["Meta"] = {"mesh.tls.sans": "gamma.example.com"}
    own = await grant_job(stack.bao, gamma, CONFIG)
    assert own.names == ("gamma.service.consul", "gamma.service.*.consul", "gamma.example.com")
    await stack.register(inject(gamma, parse_job_specs(gamma), CONFIG))

    # The sidecar's own pkiCert call (its token, its role) got a leaf with the declared name
    # and its allocation's address: the per-job role keeps allow_ip_sans.
    alloc_root = Path(stack.nomad.client.alloc_root)
    leaf = await eventually(
        lambda: next((p for p in alloc_root.rglob("mesh-tls.pem") if p.read_bytes()), None),
        what="gamma's leaf rendered",
    )
    dns, ips = leaf_names(leaf.read_bytes())
    assert dns == ["gamma.service.consul", "gamma.service.dc1.consul", "gamma.example.com"]
    assert len(ips) == 1

    # Another service's mesh name is not in gamma's grant: declaring it is refused at plan
    # time, and the sidecar's token cannot get it from Vault either.
    other = meshed("gamma", "gamma")
    other["TaskGroups"][0]["Meta"] = {"mesh.tls.sans": "beta.service.consul"}
    refused = plan_job(other, CONFIG)
    assert isinstance(refused, Invalid) and '"beta.service.consul"' in refused.reason
    _, token = await sidecar_token(stack, "gamma")
    status, body = await vault(
        stack,
        token,
        "POST",
        "pki_int/issue/mesh.default.gamma",
        {"common_name": "gamma.service.consul", "alt_names": "gamma.example.com"},
    )
    assert status == 200, body
    status, body = await vault(
        stack,
        token,
        "POST",
        "pki_int/issue/mesh.default.gamma",
        {"common_name": "gamma.service.consul", "alt_names": "beta.service.consul"},
    )
    assert (status, body["errors"]) == (
        400,
        ["subject alternate name beta.service.consul not allowed by this role"],
    )
