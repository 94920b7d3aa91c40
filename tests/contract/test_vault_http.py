"""controller.vault.http (VaultClient's read/list/write/delete/health) against a real OpenBao.

What the aiohttp calls wrote is read back with hvac, an independent client: the world Vault
holds, not the calls we made. Errors are real refusals from OpenBao (a token without the
capability, an unmounted path, a rejected parameter, nothing listening).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest

from controller.vault import (
    VaultBadRequest,
    VaultClient,
    VaultConnection,
    VaultNotFound,
    VaultPermissionDenied,
    VaultUnavailable,
)
from controller.vault.token_source import FileToken
from devstack.vault import OpenBao, start_openbao

pytestmark = pytest.mark.timeout(90)


def _admin(bao: OpenBao, namespace: str | None = None) -> Any:
    return hvac.Client(url=bao.addr, token=bao.root_token, namespace=namespace)


def _kv_mount(bao: OpenBao) -> str:
    """A new KV version 1 mount (what is written is what is read); OpenBao is shared by the
    tests of a worker, so each test has its own."""
    mount = f"plain-{uuid.uuid4().hex[:8]}"
    _admin(bao).sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    return mount


def _token(bao: OpenBao, policy: str) -> str:
    """A token holding exactly ``policy`` (HCL), under a name no other token shares."""
    admin, name = _admin(bao), f"under-test-{uuid.uuid4().hex[:8]}"
    admin.sys.create_or_update_policy(name=name, policy=policy)
    made = admin.auth.token.create(policies=[name], no_default_policy=True, ttl="10m")
    return str(made["auth"]["client_token"])


def _read_only(mount: str) -> str:
    return f'path "{mount}/*" {{ capabilities = ["read", "list"] }}'


def _read_write(mount: str) -> str:
    return f'path "{mount}/*" {{ capabilities = ["read", "list", "create", "update"] }}'


async def test_write_read_list_delete_change_what_vault_holds(openbao: OpenBao) -> None:
    mount = _kv_mount(openbao)
    admin = _admin(openbao)
    async with VaultClient(VaultConnection(openbao.addr, openbao.root_token)) as vault:
        assert await vault.write(f"{mount}/web", {"names": ["web.service.consul"]}) == {}
        await vault.write(f"{mount}/api", {"ttl": 3600})
        assert admin.read(f"{mount}/web")["data"] == {"names": ["web.service.consul"]}

        assert (await vault.read(f"{mount}/api") or {})["data"] == {"ttl": 3600}
        assert sorted(await vault.list(mount)) == ["api", "web"]

        await vault.delete(f"{mount}/web")
        assert admin.read(f"{mount}/web") is None
        assert await vault.read(f"{mount}/web") is None, "a 404 on a read is absence"
        assert await vault.list(f"{mount}/nothing-here") == [], "a 404 on a LIST is none"


async def test_health_answers_the_code_and_body(openbao: OpenBao) -> None:
    async with VaultClient(VaultConnection(openbao.addr, openbao.root_token)) as vault:
        health = await vault.health()
    assert health["code"] == 200 and health["sealed"] is False and health["initialized"]


async def test_a_missing_capability_is_permission_denied_and_never_shows_the_token(
    openbao: OpenBao,
) -> None:
    mount = _kv_mount(openbao)
    token = _token(openbao, _read_only(mount))
    async with VaultClient(VaultConnection(openbao.addr, token)) as vault:
        with pytest.raises(VaultPermissionDenied) as denied:
            await vault.write(f"{mount}/web", {"names": ["evil.example.com"]})
        with pytest.raises(VaultPermissionDenied):
            await vault.delete(f"{mount}/web")
        with pytest.raises(VaultPermissionDenied):
            await vault.read("sys/mounts")
    assert str(denied.value).startswith(f"write {mount}/web: permission denied (")
    assert token not in str(denied.value) and token not in repr(denied.value)
    assert _admin(openbao).read(f"{mount}/web") is None


async def test_not_found_and_bad_request_carry_vaults_own_words(openbao: OpenBao) -> None:
    async with VaultClient(VaultConnection(openbao.addr, openbao.root_token)) as vault:
        with pytest.raises(VaultNotFound, match="no handler for route"):
            await vault.write("no-such-mount/web", {"a": 1})
        with pytest.raises(VaultBadRequest, match="policy"):
            await vault.write("sys/policies/acl/empty", {"policy": ""})
    assert "empty" not in _admin(openbao).sys.list_acl_policies()["data"]["keys"]


async def test_nothing_listening_is_unavailable() -> None:
    conn = VaultConnection("http://127.0.0.1:1", "s.secret-token", timeout=2.0)
    async with VaultClient(conn) as vault:
        with pytest.raises(VaultUnavailable) as down:
            await vault.read("pki_int/roles/mesh")
    assert str(down.value).startswith("read pki_int/roles/mesh: ")
    assert "secret-token" not in str(down.value)


async def test_a_rewritten_token_file_is_used_from_the_next_call(
    openbao: OpenBao, tmp_path: Path
) -> None:
    mount = _kv_mount(openbao)
    file = tmp_path / "vault_token"
    file.write_text(_token(openbao, _read_only(mount)) + "\n")
    conn = VaultConnection(openbao.addr, "", source=FileToken(file))
    async with VaultClient(conn) as vault:
        with pytest.raises(VaultPermissionDenied):
            await vault.write(f"{mount}/web", {"v": 1})
        staged = tmp_path / "vault_token.new"  # Nomad rewrites the file atomically
        staged.write_text(_token(openbao, _read_write(mount)) + "\n")
        os.replace(staged, file)
        await vault.write(f"{mount}/web", {"v": 2})
    assert _admin(openbao).read(f"{mount}/web")["data"] == {"v": 2}


async def test_the_namespace_header_puts_calls_in_that_namespace(openbao: OpenBao) -> None:
    team, mount = f"team-{uuid.uuid4().hex[:8]}", "plain"
    _admin(openbao).write_data(f"sys/namespaces/{team}", data={})
    conn = VaultConnection(openbao.addr, openbao.root_token, namespace=team)
    async with VaultClient(conn) as vault:
        await vault.write(f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "1"}})
        await vault.write(f"{mount}/web", {"v": 1})
        assert await vault.list(mount) == ["web"]
    assert _admin(openbao, namespace=team).read(f"{mount}/web")["data"] == {"v": 1}
    assert _admin(openbao).read(f"{mount}/web") is None, "nothing landed in the root namespace"


async def test_close_ends_the_session_and_a_later_call_opens_another(openbao: OpenBao) -> None:
    vault = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
    assert vault.http.closed, "no session before the first call"
    await vault.health()
    assert not vault.http.closed
    await vault.close()
    assert vault.http.closed
    assert (await vault.health())["code"] == 200
    await vault.close()
    assert vault.http.closed


async def test_tls_verifies_against_a_ca_file_or_a_ca_directory(tmp_path: Path) -> None:
    bao = await start_openbao(data_dir=str(tmp_path / "bao"), tls=True)
    try:
        assert bao.ca_cert
        ca_dir = tmp_path / "cas"
        ca_dir.mkdir()
        shutil.copy(bao.ca_cert, ca_dir / "openbao-ca.pem")
        for verify in (bao.ca_cert, str(ca_dir)):
            conn = VaultConnection(bao.addr, bao.root_token, verify=verify)
            async with VaultClient(conn) as vault:
                assert (await vault.health())["code"] == 200
        async with VaultClient(VaultConnection(bao.addr, bao.root_token)) as unverified:
            with pytest.raises(VaultUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await unverified.read("sys/mounts")
    finally:
        await bao.stop()
