"""``controller run``: the long-running controller against whatever the environment points at.

NOMAD_*, CONSUL_*, VAULT_* and MESH_* are read as the HashiCorp CLIs read them; the few flags
here override their variables (flags > env > defaults). Exit codes, for a supervisor (a Nomad
system job, systemd): 0 after SIGTERM/SIGINT (leader work drained, lock released), 1 when
leadership was lost or a part of the controller failed (restart me), 2 for bad settings.
"""

from __future__ import annotations

import asyncio
import sys

import click

from controller.app import run_app
from controller.config import ConfigError, Settings
from controller.logging import configure_logging

EXIT_BAD_SETTINGS = 2


@click.command("run")
@click.option("--http-addr", "mesh_http_addr", default=None, help="[env MESH_HTTP_ADDR]")
@click.option("--workers", "mesh_workers", type=int, default=None, help="[env MESH_WORKERS]")
@click.option("--namespaces", "mesh_namespaces", default=None, help="[env MESH_NAMESPACES]")
@click.option("--log-level", "mesh_log_level", default=None, help="[env MESH_LOG_LEVEL]")
@click.option("--log-format", "mesh_log_format", default=None, help="[env MESH_LOG_FORMAT]")
def run(**flags: object) -> None:
    """Run the controller until SIGTERM (exit 0) or lost leadership (exit 1)."""
    try:
        settings = Settings.from_env(None, **flags)
    except ConfigError as exc:
        click.echo(f"controller run: {exc}", err=True)
        sys.exit(EXIT_BAD_SETTINGS)
    c = settings.controller
    configure_logging(level=c.log_level, fmt=c.log_format, cache=True)
    sys.exit(asyncio.run(run_app(settings)))
