"""``controllerctl check [--pre]``: preflight and health checks, one line each, linkerd style.

Without --pre it checks a running installation: backends, tokens, the PKI (CA lifetimes, role,
policies) and the controller (a leader that renews, a recent event stream). --pre checks what
must hold before installing: backends, versions, clocks, and that the tokens can do what the
install and the controller will do. Exit codes as for ``status``: 0 nothing failed (‼ warnings
allowed), 1 a check failed, 2 Nomad, Consul or Vault could not be reached or read.
"""

from __future__ import annotations

import asyncio
import json
import sys

import click

from controller.ctl.checks import exit_code
from controller.ctl.checkup import render_text, run_checks
from controller.ctl.common import load_settings
from controller.ctl.table import make_console


@click.command("check")
@click.option("--pre", is_flag=True, help="Only what must hold before installing.")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--status-url",
    envvar="MESH_STATUS_URL",
    default=None,
    help="The leader's /status endpoint (event stream freshness) [env MESH_STATUS_URL].",
)
def check(pre: bool, output: str, status_url: str | None) -> None:
    """Preflight and health checks: ✔ ok, × failed (with a hint), ‼ worth a look."""
    settings = load_settings("check")
    results = asyncio.run(run_checks(settings, pre=pre, status_url=status_url))
    if output == "json":
        doc = {"exit_code": exit_code(results), "checks": [r.to_json() for r in results]}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        make_console().print(render_text(results, pre=pre))
    sys.exit(exit_code(results))
