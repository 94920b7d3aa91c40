"""``controller dev [--nodes N] [--demo] [--no-consul]``: one command from zero to a mesh.

The devstack (Nomad and Consul twins, the raw_exec executor, a real OpenBao), the mesh PKI and
the real controller in this process; what it does and prints is ``controller.dev.session``'s.
Exit codes: the controller's (0 after Ctrl-C), 1 when the stack or the controller failed to
start, 2 for bad settings.
"""

from __future__ import annotations

import asyncio
import os
import sys

import click

from controller.config import ConfigError
from controller.dev.session import main
from controller.logging import configure_logging


@click.command("dev")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 250))
@click.option(
    "--demo", is_flag=True, help="Submit sample jobs (web, its client, worker), show proof."
)
@click.option(
    "--no-consul",
    "no_consul",
    is_flag=True,
    help="No Consul: CONSUL_HTTP_ADDR unset; the demo registers in Nomad's own catalog.",
)
def dev(nodes: int, demo: bool, no_consul: bool) -> None:
    """Start the devstack and the controller in one process (Ctrl-C stops everything)."""
    level = os.environ.get("MESH_LOG_LEVEL", "warning")
    try:
        configure_logging(
            level=level, fmt=os.environ.get("MESH_LOG_FORMAT", "auto"), stream=sys.stderr
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        sys.exit(asyncio.run(main(nodes, demo, consul=not no_consul)))
    except ConfigError as exc:
        click.echo(f"controller dev: {exc}", err=True)
        sys.exit(2)
    except RuntimeError as exc:
        click.echo(f"controller dev: {exc}", err=True)
        sys.exit(1)
