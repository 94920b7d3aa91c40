"""What the operator commands share: settings, the three clients, exit codes, time phrases.

The commands read the environment exactly as the controller does (``Settings.from_env``: the
NOMAD_*, CONSUL_*, VAULT_* and MESH_* variables), so an operator who exports the controller's
environment sees what the controller sees. Timeouts and retry budgets are short: an operator
waiting on a dead backend wants "cannot reach Consul" in seconds, not a minute of retries.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn

import click

from controller.config import ConfigError, Settings
from controller.consul.client import ConsulClient
from controller.nomad.client import NomadClient
from controller.vault import VaultClient, VaultConnection

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_UNREACHABLE = 2

CALL_TIMEOUT = 5.0
RETRY_BUDGET = 1.5


def load_settings(command: str) -> Settings:
    """Settings from the environment; an invalid setting exits 2 with the reason."""
    try:
        return Settings.from_env()
    except ConfigError as err:
        fail(command, EXIT_UNREACHABLE, f"invalid setting: {err}")


def fail(command: str, code: int, message: str) -> NoReturn:
    click.echo(f"controllerctl {command}: {message}", err=True)
    sys.exit(code)


@dataclass
class Clients:
    settings: Settings
    nomad: NomadClient
    consul: ConsulClient | None  # None: CONSUL_HTTP_ADDR unset (Consul is optional)
    vault: VaultClient

    @property
    def namespace(self) -> str:
        """Where the controller keeps its Variables (MESH_CONTROLLER_NAMESPACE)."""
        return self.settings.controller.controller_namespace


@asynccontextmanager
async def open_clients(settings: Settings) -> AsyncIterator[Clients]:
    nomad = NomadClient.from_settings(
        settings.nomad,
        timeout=CALL_TIMEOUT,
        retry_budget=RETRY_BUDGET,
        user_agent="nomad-tls-mesh/controllerctl",
    )
    consul = (
        ConsulClient.from_settings(settings.consul, timeout=CALL_TIMEOUT, retry_budget=RETRY_BUDGET)
        if settings.consul.configured
        else None
    )
    vault = VaultClient(VaultConnection.from_settings(settings.vault, timeout=CALL_TIMEOUT))
    try:
        yield Clients(settings, nomad, consul, vault)
    finally:
        await nomad.close()
        await vault.close()
        if consul is not None:
            await consul.close()


def human_duration(seconds: float) -> str:
    """Two units at most, the way operators say it: ``61d``, ``5h12m``, ``42s``, ``-3h``."""
    sign = "-" if seconds < 0 else ""
    left = int(abs(seconds))
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if days >= 10:
        text = f"{days}d"
    elif days:
        text = f"{days}d{hours}h" if hours else f"{days}d"
    elif hours:
        text = f"{hours}h{minutes}m" if minutes else f"{hours}h"
    elif minutes:
        text = f"{minutes}m{secs}s" if secs else f"{minutes}m"
    else:
        text = f"{secs}s"
    return sign + text
