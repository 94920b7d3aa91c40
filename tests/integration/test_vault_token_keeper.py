"""The controller's own Vault token against a real OpenBao: where it is read from, who renews it.

- A token given in VAULT_TOKEN is the controller's to renew: once half its TTL has passed (on
  the keeper's clock, a FakeClock here) it calls renew-self, and Vault records the renewal.
- A token file (Nomad's ``secrets/vault_token``) is re-read when it changes, so the next call
  uses the new token; the controller never renews a file token, Nomad does.
- A root token never expires: the expiry gauge says 0.
- A revoked token is reported, not fatal: the keeper keeps trying and logs why, never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from controller.config import Settings, VaultSettings
from controller.runtime.clock import FakeClock
from controller.vault import VaultClient, VaultConnection
from controller.vault.token_keeper import TokenKeeper, build_token_keeper
from controller.vault.token_source import FileToken
from devstack.vault import OpenBao
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)


async def new_token(bao: OpenBao, **params: object) -> str:
    admin = VaultClient(VaultConnection(bao.addr, bao.root_token))
    answer = await admin.write("auth/token/create-orphan", dict(params)) or {}
    return str(answer["auth"]["client_token"])


async def lookup(bao: OpenBao, token: str) -> dict[str, object]:
    own = VaultClient(VaultConnection(bao.addr, token))
    return dict(((await own.read("auth/token/lookup-self")) or {})["data"])


def settings(bao: OpenBao, **env: str) -> VaultSettings:
    return Settings.from_env({"VAULT_ADDR": bao.addr, **env}).vault


@contextlib.asynccontextmanager
async def keeping(vault: VaultClient, clock: FakeClock) -> AsyncIterator[TokenKeeper]:
    keeper = build_token_keeper(vault, clock, CollectorRegistry())
    task = asyncio.create_task(keeper.run())
    try:
        await eventually(lambda: keeper.facts is not None and clock.sleepers == 1, what="looked")
        yield keeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def gauge(keeper: TokenKeeper) -> float:
    return float(keeper.metrics.expiry._value.get())


async def test_an_env_token_is_renewed_by_the_controller_after_half_its_ttl(
    openbao: OpenBao,
) -> None:
    token = await new_token(openbao, period="1h", policies=["default"])
    clock = FakeClock()
    vault = VaultClient(VaultConnection.from_settings(settings(openbao, VAULT_TOKEN=token)))
    async with keeping(vault, clock) as keeper:
        assert keeper.facts is not None and keeper.facts.period == 3600
        first_expiry = gauge(keeper)
        assert first_expiry > 0
        assert "last_renewal_time" not in await lookup(openbao, token)  # not yet

        await clock.advance(1799)  # just before half the TTL: nothing happens
        assert keeper.renewed == 0
        await clock.advance(2)
        await eventually(lambda: keeper.renewed == 1, what="renewed once")
        await eventually(lambda: gauge(keeper) >= first_expiry, what="gauge after renewal")
    looked = await lookup(openbao, token)
    assert looked.get("last_renewal_time")  # Vault's own record of the renewal


async def test_a_token_file_is_re_read_when_it_changes_and_never_renewed_by_us(
    openbao: OpenBao, tmp_path: Path
) -> None:
    first = await new_token(openbao, period="1h", policies=["default"], meta={"n": "first"})
    second = await new_token(openbao, period="1h", policies=["default"], meta={"n": "second"})
    path = tmp_path / "vault_token"
    path.write_text(first + "\n")
    env = {"VAULT_TOKEN": second, "VAULT_TOKEN_FILE": str(path)}  # the file wins
    vault = VaultClient(VaultConnection.from_settings(settings(openbao, **env)))
    assert isinstance(vault.conn.source, FileToken)

    async def whose() -> str:
        data = ((await vault.read("auth/token/lookup-self")) or {})["data"]
        return str((data.get("meta") or {}).get("n"))

    assert await whose() == "first"
    path.write_text(second + "\n")  # what Nomad does after a re-login
    assert await whose() == "second"
    path.unlink()  # briefly missing while Nomad replaces it: the last token stays in use
    assert await whose() == "second"

    clock = FakeClock()
    async with keeping(vault, clock) as keeper:
        await clock.advance(3 * 3600)  # long past half the TTL
        await eventually(lambda: clock.sleepers == 1, what="keeper asleep again")
        assert keeper.renewed == 0
    assert "last_renewal_time" not in await lookup(openbao, second)


async def test_a_root_token_never_expires_and_the_gauge_says_zero(openbao: OpenBao) -> None:
    vault = VaultClient(
        VaultConnection.from_settings(settings(openbao, VAULT_TOKEN=openbao.root_token))
    )
    async with keeping(vault, FakeClock()) as keeper:
        assert gauge(keeper) == 0.0
        assert keeper.renewed == 0


async def test_a_revoked_token_is_logged_as_invalid_without_the_token(openbao: OpenBao) -> None:
    token = await new_token(openbao, period="1h", policies=["default"])
    clock = FakeClock()
    vault = VaultClient(VaultConnection.from_settings(settings(openbao, VAULT_TOKEN=token)))
    with capture_logs() as logs:
        async with keeping(vault, clock) as keeper:
            expiry = gauge(keeper)
            admin = VaultClient(VaultConnection(openbao.addr, openbao.root_token))
            await admin.write("auth/token/revoke", {"token": token})
            await clock.advance(1801)
            await eventually(
                lambda: any(e["event"].startswith("vault token invalid") for e in logs),
                what="invalid logged",
            )
            assert keeper.renewed == 0
            assert gauge(keeper) == expiry  # the last known expiry stays; it passes, alerts fire
    assert logs and all(token not in str(e) for e in logs)
