"""Why the mesh's JWT role keys entity aliases by ``sub`` (README "Identity-bound certificates").

Vault keeps one entity alias per (auth mount, alias name) and rewrites its metadata at every
login. With ``user_claim = /nomad_job_id`` (``nomad setup vault``'s role) job ``web`` in
namespace ``a`` and job ``web`` in namespace ``b`` share one alias, so the templated policy of a
token issued to ``a/web`` follows whichever namespace logged in last: after ``b/web`` logs in,
``a/web``'s token may issue ``b/web``'s names. The mesh's role (``user_claim = /sub``) gives each
task its own alias, and ``a/web``'s token stays bound to ``a``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from controller.vault import PkiLayout, VaultClient, VaultConnection
from controller.vault.grants import VaultCertGrants
from controller.vault.workload_auth import JWT_MOUNT
from devstack.vault import OpenBao
from devstack.workload_login import IdentityIssuer, identity_issuer

pytestmark = pytest.mark.timeout(60)

A_ROLE = "pki_int/issue/mesh.a.web"
B_ROLE = "pki_int/issue/mesh.b.web"


async def capabilities(bao: OpenBao, token: str) -> dict[str, Any]:
    client = VaultClient(VaultConnection(bao.addr, token))
    answer = await client.write("sys/capabilities-self", {"paths": [A_ROLE, B_ROLE]}) or {}
    return {path: answer.get(path) for path in (A_ROLE, B_ROLE)}


async def login_job_id_keyed(issuer: IdentityIssuer, namespace: str) -> str:
    """A login at a role shaped like `nomad setup vault`'s (alias = the job ID)."""
    body = {"role": "by-job-id", "jwt": issuer.jwt(namespace, "web")}
    url = f"{issuer.bao.addr}/v1/auth/{JWT_MOUNT}/login"
    async with aiohttp.ClientSession() as http, http.put(url, json=body) as resp:
        answer = await resp.json(content_type=None)
        assert resp.status == 200, answer
        return str(answer["auth"]["client_token"])


async def test_same_job_id_in_two_namespaces_stays_apart_with_sub_aliases(
    openbao: OpenBao,
) -> None:
    async with identity_issuer(openbao) as issuer:
        admin = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
        grants = VaultCertGrants(admin, PkiLayout())
        await grants.grant("mesh.a.web", ("web.a-only.service.consul",))
        await grants.grant("mesh.b.web", ("web.b-only.service.consul",))

        # The mesh's role: a's token keeps a's grant after b's login.
        a_token = await issuer.login("a", "web")
        await issuer.login("b", "web")
        assert await capabilities(openbao, a_token) == {A_ROLE: ["update"], B_ROLE: ["deny"]}

        # The same policy behind a role keyed by the job ID: a's token drifts to b.
        role = (await admin.read(f"auth/{JWT_MOUNT}/role/mesh-workload") or {})["data"]
        same = {k: role[k] for k in ("role_type", "bound_audiences", "claim_mappings")}
        await admin.write(
            f"auth/{JWT_MOUNT}/role/by-job-id",
            same
            | {
                "user_claim": "/nomad_job_id",
                "user_claim_json_pointer": True,
                "token_policies": role["token_policies"],
                "token_type": "service",
            },
        )
        drifting = await login_job_id_keyed(issuer, "a")
        assert await capabilities(openbao, drifting) == {A_ROLE: ["update"], B_ROLE: ["deny"]}
        await login_job_id_keyed(issuer, "b")
        assert await capabilities(openbao, drifting) == {A_ROLE: ["deny"], B_ROLE: ["update"]}
