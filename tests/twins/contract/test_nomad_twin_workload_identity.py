"""The twin's workload identities, checked as a third party checks Nomad's: a JWT library that is
not the twin's (PyJWT) verifies them against `/.well-known/jwks.json`, and the claims are exactly
nomad/structs/workload_id.go `IdentityClaims` as `IdentityClaimsBuilder.Build` fills them,
signed as nomad/encrypter.go `SignClaims` signs (RS256, `kid`, `typ: JWT`, `iss` = oidc_issuer).
Discovery is structs/keyring.go `NewOIDCDiscoveryConfig`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.nomad.simdriver import SimulatedDriver
from devstack.nomad.taskctx import TaskContext

pytestmark = pytest.mark.timeout(30)


class CaptureDriver(SimulatedDriver):
    def __init__(self) -> None:
        super().__init__(start_delay=0.01)
        self.ctxs: dict[str, TaskContext] = {}

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.ctxs[task["Name"]] = ctx
        await super().start(alloc, task, ctx)


def job() -> dict[str, Any]:
    task = {
        "Name": "t",
        "Driver": "capture",
        "Config": {},
        "Vault": {"Role": "r1"},
        "Identities": [{"Name": "db", "Audience": ["db.example", "other"], "TTL": 600 * 10**9}],
    }
    return {
        "ID": "web",
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [task]}],
    }


@pytest.fixture
async def world() -> AsyncIterator[tuple[NomadTwin, CaptureDriver, aiohttp.ClientSession]]:
    driver = CaptureDriver()
    twin = await start_nomad_twin(nodes=1, drivers={"capture": driver})
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{twin.url}/v1/jobs", json={"Job": job()}) as r:
            assert r.status == 200, await r.text()
        deadline = time.monotonic() + 10
        while "t" not in driver.ctxs and time.monotonic() < deadline:
            await _sleep()
        try:
            yield twin, driver, http
        finally:
            await twin.stop()


async def _sleep() -> None:
    await asyncio.sleep(0.05)


async def _jwks(http: aiohttp.ClientSession, url: str) -> jwt.PyJWKSet:
    async with http.get(f"{url}/.well-known/jwks.json") as r:
        assert r.status == 200
        return jwt.PyJWKSet.from_dict(await r.json())


async def test_identities_verify_against_the_jwks_with_nomads_claims(world: Any) -> None:
    twin, driver, http = world
    ctx = driver.ctxs["t"]
    keys = await _jwks(http, twin.url)
    alloc_id = ctx.alloc_id
    before = int(time.time())

    vault_jwt = ctx.signed_identity("vault_default")
    assert vault_jwt is not None
    header = jwt.get_unverified_header(vault_jwt)
    assert header == {"alg": "RS256", "kid": keys.keys[0].key_id, "typ": "JWT"}
    claims = jwt.decode(
        vault_jwt,
        keys[header["kid"]].key,
        algorithms=["RS256"],
        audience="vault.io",
        issuer=twin.url,
    )
    assert list(claims) == [
        "nomad_namespace",
        "nomad_job_id",
        "nomad_allocation_id",
        "nomad_task",
        "vault_role",
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
    ]
    assert claims["nomad_namespace"] == "default"
    assert claims["nomad_job_id"] == "web"
    assert claims["nomad_allocation_id"] == alloc_id
    assert claims["nomad_task"] == "t"
    assert claims["vault_role"] == "r1"
    assert claims["sub"] == "global:default:web:g:t:vault_default"
    assert claims["aud"] == "vault.io"  # go-jose: a single audience is a string
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 3600  # the server's vault.default_identity TTL

    # an identity block of the job: two audiences, its own TTL, no Vault claims
    db = ctx.signed_identity("db")
    assert db is not None
    claims = jwt.decode(db, keys.keys[0].key, algorithms=["RS256"], audience="db.example")
    assert claims["aud"] == ["db.example", "other"]
    assert claims["sub"] == "global:default:web:g:t:db"
    assert claims["exp"] == claims["iat"] + 600
    assert "vault_role" not in claims

    # the default identity never expires and is for Nomad only
    default = ctx.signed_identity("default")
    assert default is not None
    claims = jwt.decode(default, keys.keys[0].key, algorithms=["RS256"], audience="nomadproject.io")
    assert "exp" not in claims
    assert claims["sub"] == "global:default:web:g:t:default"
    assert ctx.signed_identity("nope") is None

    # each signature is fresh (jti) and a forged body does not verify
    assert ctx.signed_identity("db") != db
    head, body, sig = db.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{body[:-4]}AAAA.{sig}", keys.keys[0].key, algorithms=["RS256"])


async def test_jwks_and_discovery_documents(world: Any) -> None:
    twin, _driver, http = world
    async with http.get(f"{twin.url}/.well-known/jwks.json") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        max_age = r.headers["Cache-Control"]
        body = await r.json()
    assert max_age.startswith("max-age=") and int(max_age.split("=")[1]) >= 15 * 60
    (key,) = body["keys"]
    assert list(key) == ["use", "kty", "kid", "alg", "n", "e"]
    assert (key["use"], key["kty"], key["alg"], key["e"]) == ("sig", "RSA", "RS256", "AQAB")

    async with http.get(f"{twin.url}/.well-known/openid-configuration") as r:
        assert r.status == 200
        disco = await r.json()
    assert disco == {
        "issuer": twin.url,
        "jwks_uri": f"{twin.url}/.well-known/jwks.json",
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
    }
    async with http.post(f"{twin.url}/.well-known/jwks.json") as r:
        assert r.status == 405


async def test_without_an_issuer_discovery_is_disabled_and_tokens_have_no_iss() -> None:
    driver = CaptureDriver()
    twin = await start_nomad_twin(nodes=1, drivers={"capture": driver}, oidc_issuer=False)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{twin.url}/.well-known/openid-configuration") as r:
                assert r.status == 404
                assert await r.text() == "OIDC Discovery endpoint disabled"
            async with http.post(f"{twin.url}/v1/jobs", json={"Job": job()}) as r:
                assert r.status == 200
            deadline = time.monotonic() + 10
            while "t" not in driver.ctxs and time.monotonic() < deadline:
                await _sleep()
            keys = await _jwks(http, twin.url)
        token = driver.ctxs["t"].signed_identity("vault_default")
        assert token is not None
        claims = jwt.decode(token, keys.keys[0].key, algorithms=["RS256"], audience="vault.io")
        assert "iss" not in claims
    finally:
        await twin.stop()
