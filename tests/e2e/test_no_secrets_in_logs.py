"""No secrets in logs or outputs, and leaf keys stay where they belong — a full E2E with DEBUG.

The whole devstack with Nomad ACLs on (real OpenBao, real processes and nginx), the controller
in-process with DEBUG logging (structlog and every stdlib logger: aiohttp, hvac, urllib3) into
one file. A meshed job converges to Ready; then every log line, the /status, /metrics, /healthz
answers and the output of `controllerctl status`, `check` and `explain` are scanned for the
Nomad token, the Vault tokens (the root token, and the controller's own: a 20 s periodic token
it renews during the run, so renewals are logged too), anything shaped like a Vault token
(`hvs.`/`hvb.`/`s.`/`b.` prefixes) or a JWT (a workload identity: three base64url segments
starting `eyJ`), any private key PEM (and the leaf key's own bytes) and any `secret_id`: zero
hits. The rendered key file is 0600 and owned by the task's user, and the
controller never asked Vault for a leaf (no issue/sign call), so it never held a leaf key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import structlog
from click.testing import CliRunner

from chaos.world import meshed_web
from controller.app import App
from controller.cmd import controllerctl
from controller.config import Settings
from controller.dev.session import dev_environment
from controller.logging import configure_logging
from controller.vault import VaultClient, VaultConnection, bootstrap_pki, pki_layout
from crds_equivalent.status import Phase
from devstack.testing import FAST
from devstack.up import Devstack, build_devstack
from reconcilers.injection.nginx import CERT_FILE
from tests.support.vault_tokens import controller_token
from tests.support.waiting import eventually

TOKEN_PERIOD = 20  # renewed every 10 s by the controller, so renewals happen during the run
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
VAULT_TOKEN_SHAPE = re.compile(r"\b(?:hv[sbr]|s|b)\.[A-Za-z0-9_-]{20,}")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


class VaultCalls:
    """Records every Vault path the controller touches."""

    def __init__(self, client: VaultClient) -> None:
        self.paths: list[str] = []
        for name in ("read", "list", "write", "patch", "delete"):
            inner = getattr(client, name)

            async def recorded(path: str, *args: Any, _inner: Any = inner, **kw: Any) -> Any:
                self.paths.append(path)
                return await _inner(path, *args, **kw)

            setattr(client, name, recorded)


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Devstack, App, Path, VaultCalls]]:
    log_file = tmp_path / "controller.log"
    saved_handlers = list(logging.getLogger().handlers)
    saved_level = logging.getLogger().level
    saved_structlog = structlog.get_config()
    stack = await build_devstack(nodes=2, acl=True, min_check_interval=0.5)
    app: App | None = None
    task: asyncio.Task[int] | None = None
    with log_file.open("w") as stream:
        try:
            configure_logging(level="debug", fmt="json", stream=stream)
            env = dev_environment(stack.env(), {}) | {"MESH_LOG_LEVEL": "debug"}
            settings = Settings.from_env(env | {"MESH_HEALTH_INTERVAL": "2s"})
            root = VaultConnection(stack.vault.addr, stack.vault.root_token)
            async with VaultClient(root) as vault:
                await bootstrap_pki(vault, pki_layout(settings.mesh))
                own = await controller_token(vault, f"{TOKEN_PERIOD}s")
            settings = Settings.from_env(env | {"MESH_HEALTH_INTERVAL": "2s", "VAULT_TOKEN": own})
            app = App(settings, tuning=FAST)
            calls = VaultCalls(app.vault)
            task = asyncio.create_task(app.run())
            await asyncio.wait_for(app.source.synced.wait(), 30)
            yield stack, app, log_file, calls
        finally:
            if app is not None and task is not None:
                app.request_stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 20)
                await app.close()
            await stack.stop()
            root = logging.getLogger()
            for h in list(root.handlers):
                root.removeHandler(h)
            for h in saved_handlers:
                root.addHandler(h)
            root.setLevel(saved_level)
            structlog.configure(**saved_structlog)


def key_material(alloc_root: Path) -> list[str]:
    """Check the rendered leaf + chain + key files (0600, the task's user) and return lines of
    the private keys' base64 bodies, to look for elsewhere."""
    key_files = list(Path(alloc_root).glob(f"*/*/secrets/{CERT_FILE}"))
    assert key_files
    lines: list[str] = []
    for path in key_files:
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, path
        assert info.st_uid == os.getuid()  # raw_exec tasks run as the agent's user
        body = re.search(r"PRIVATE KEY-----\n(.*?)\n-----END", path.read_text(), re.DOTALL)
        assert body is not None
        lines += [ln for ln in body.group(1).splitlines() if len(ln) >= 40]
    assert lines
    return lines


async def ctl(stack: Devstack, status_url: str, *args: str, **extra: str) -> str:
    env: dict[str, str | None] = dict(stack.env()) | {"MESH_STATUS_URL": status_url} | extra
    result = await asyncio.to_thread(
        CliRunner().invoke, controllerctl, list(args), env=env, catch_exceptions=False
    )
    return result.output


async def test_a_debug_run_leaks_nothing_and_leaf_keys_stay_with_the_task(
    world: tuple[Devstack, App, Path, VaultCalls],
) -> None:
    stack, app, log_file, calls = world
    assert stack.nomad.management_token
    await app.jobs.register_job(meshed_web("vaulted"), enforce_index=None)
    for _ in range(400):
        status = await app.statuses.get("default", "vaulted")
        if status is not None and status.phase == Phase.READY:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("vaulted never became Ready")

    leaf_key_lines = key_material(stack.nomad.ctx.client.alloc_root)
    outputs = {"log": ""}
    async with aiohttp.ClientSession() as http:
        for path in ("/status", "/metrics", "/healthz", "/readyz", "/"):
            async with http.get(app.http.url + path) as resp:
                outputs[path] = await resp.text()
    own = app.vault.conn.token  # the controller's own token, as an operator would export it
    await eventually(lambda: app.vault_token.renewed >= 1, within=30, what="a renewal logged")
    for args in (("status",), ("status", "-o", "json"), ("check",), ("explain", "vaulted")):
        outputs["controllerctl " + " ".join(args)] = await ctl(stack, app.http.url, *args)
    for args in (("check",), ("check", "-o", "json")):
        text = await ctl(stack, app.http.url, *args, VAULT_TOKEN=own)
        outputs["controllerctl (controller's token) " + " ".join(args)] = text
    outputs["log"] = log_file.read_text()
    # DEBUG really was on: stdlib loggers' debug lines (asyncio's; urllib3's under hvac's
    # renewals) are in the file. The controller's per-job Vault calls go over aiohttp, which logs
    # no line per request, so a count of all lines says little.
    levels = [json.loads(line).get("level") for line in outputs["log"].splitlines() if line]
    assert levels.count("debug") >= 5

    needles = {
        "nomad token": stack.nomad.management_token,
        "vault token": stack.vault.root_token,
        "controller's vault token": own,
        "leaf key": leaf_key_lines[0],
    }
    assert all(len(n) >= 20 for n in needles.values())
    # The outputs are the real ones (a scan of empty text proves nothing).
    assert "vaulted" in outputs["/status"] and "vaulted" in outputs["controllerctl status"]
    assert "vaulted" in outputs["controllerctl explain vaulted"]
    assert "Nomad" in outputs["controllerctl check"]
    hits = [
        f"{what} in {where}"
        for where, text in outputs.items()
        for what, needle in needles.items()
        if needle in text
    ]
    assert "vault token renewed" in outputs["log"]  # the keeper's lines are in the scan
    assert "Vault token is valid" in outputs["controllerctl (controller's token) check"]
    hits += [
        f"{shape.pattern} in {where} at {found.start()}"
        for where, text in outputs.items()
        for shape in (JWT, VAULT_TOKEN_SHAPE)
        for found in shape.finditer(text)
    ]
    hits += [
        f"{pattern} in {where}"
        for where, text in outputs.items()
        for pattern in ("PRIVATE KEY-----", "secret_id", "SecretID")
        if pattern.lower() in text.lower()
    ]
    assert hits == []

    # The controller read CA material only: never an issue or sign endpoint.
    assert calls.paths
    assert not [p for p in calls.paths if re.search(r"/(issue|sign|sign-verbatim)(/|$)", p)]
