"""`python -m devstack up [--nodes N] [--acl] [--data-dir D] [--no-consul]`: the devstack.

Prints the `export` lines for NOMAD_ADDR, CONSUL_HTTP_ADDR (not with --no-consul), VAULT_ADDR,
VAULT_TOKEN (and NOMAD_TOKEN with --acl), then `devstack ready`, and runs until
SIGINT/SIGTERM, when it stops everything it started.
"""

from __future__ import annotations

import asyncio
import logging

import click


@click.group()
def main() -> None:
    """The embedded devstack: Nomad and Consul API twins and a real OpenBao."""


@main.command()
@click.option(
    "--nodes",
    default=3,
    show_default=True,
    type=click.IntRange(1, 250),
    help="simulated Nomad client nodes",
)
@click.option("--acl", is_flag=True, help="enable Nomad ACLs and export NOMAD_TOKEN (management)")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="keep OpenBao and Nomad data here (default: temporary, removed on exit)",
)
@click.option(
    "--no-consul",
    "no_consul",
    is_flag=True,
    help="no Consul twin and no registrar: services use Nomad's own catalog (provider nomad)",
)
def up(nodes: int, acl: bool, data_dir: str | None, no_consul: bool) -> None:
    """Start the devstack, print the environment to export, run until interrupted."""
    from devstack.up import run_up

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run_up(nodes=nodes, acl=acl, data_dir=data_dir, consul=not no_consul))


if __name__ == "__main__":
    main(prog_name="python -m devstack")
