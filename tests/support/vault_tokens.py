"""The controller's own Vault token, made the way an operator makes it, for E2E tests.

``controller_token`` creates an orphan periodic token with the shipped ``mesh-controller``
policy (``bootstrap_pki`` writes it) and Vault's ``default`` policy (lookup-self and
renew-self), what ``controllerctl install`` does with a shorter period. ``token_world`` is the
devstack with the controller running on such a token instead of the root token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from controller.app import App, Tuning
from controller.config import Settings
from controller.dev.session import dev_environment
from controller.vault import (
    CONTROLLER_POLICY,
    VaultClient,
    VaultConnection,
    bootstrap_pki,
    pki_layout,
)
from devstack.up import Devstack, build_devstack


async def controller_token(vault: VaultClient, period: str) -> str:
    """A new orphan periodic token with the controller's policy; `vault` must be an admin's."""
    answer = await vault.write(
        "auth/token/create-orphan",
        {"policies": [CONTROLLER_POLICY], "period": period, "display_name": "mesh-controller"},
    )
    token = ((answer or {}).get("auth") or {}).get("client_token")
    assert isinstance(token, str) and token
    return token


@dataclass
class TokenWorld:
    stack: Devstack
    app: App
    admin: VaultClient  # the root token's client, for checks the controller's token may not do
    token: str  # the controller's own token


@contextlib.asynccontextmanager
async def token_world(period: str, tuning: Tuning, **env: str) -> AsyncIterator[TokenWorld]:
    """The devstack, its PKI bootstrapped, and the controller on a fresh periodic token."""
    stack = await build_devstack(nodes=2, min_check_interval=0.5)
    app: App | None = None
    task: asyncio.Task[int] | None = None
    admin = VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token))
    try:
        base = Settings.from_env(dev_environment(stack.env(), {}))
        await bootstrap_pki(admin, pki_layout(base.mesh))
        token = await controller_token(admin, period)
        values = dev_environment(stack.env(), {}) | env | {"VAULT_TOKEN": token}
        app = App(Settings.from_env(values), tuning=tuning)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.source.synced.wait(), 30)
        yield TokenWorld(stack, app, admin, token)
    finally:
        if app is not None and task is not None:
            app.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 20)
            await app.close()
        await admin.close()
        await stack.stop()
