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
from collections.abc import Sequence

import click
from rich.text import Text

from controller.config import Settings
from controller.ctl.checks import CheckResult, Mark, exit_code
from controller.ctl.common import load_settings, open_clients
from controller.ctl.probes_controller import consul_checks, controller_checks
from controller.ctl.probes_nomad import nomad_checks, utcnow
from controller.ctl.probes_vault import pki_checks, vault_checks
from controller.ctl.table import make_console

_STYLE = {Mark.OK: "green", Mark.FAIL: "bold red", Mark.WARN: "yellow"}


async def run_checks(settings: Settings, *, pre: bool, status_url: str | None) -> list[CheckResult]:
    async with open_clients(settings) as clients:
        results = await nomad_checks(clients, pre, utcnow)
        nomad_up = not any(r.unreachable for r in results)
        results += await consul_checks(clients)
        vault = await vault_checks(clients, pre, utcnow)
        results += vault
        if not pre and not any(r.unreachable for r in vault):
            results += await pki_checks(clients, utcnow)
        if not pre and nomad_up:
            results += await controller_checks(clients, status_url, utcnow)
        return results


def render_text(results: Sequence[CheckResult], *, pre: bool) -> Text:
    out = Text()
    section = None
    for result in results:
        if result.section != section:
            section = result.section
            out.append(("\n" if out else "") + f"{section}\n{'-' * len(section)}\n", style="bold")
        out.append(str(result.mark), style=_STYLE[result.mark])
        out.append(f" {result.name}")
        if result.detail:
            out.append(f": {result.detail}", style="dim" if result.mark is Mark.OK else "")
        out.append("\n")
        if result.hint and result.mark is not Mark.OK:
            out.append(f"    hint: {result.hint}\n", style="cyan")
    code = exit_code(results)
    failed = sum(1 for r in results if r.mark is Mark.FAIL)
    warned = sum(1 for r in results if r.mark is Mark.WARN)
    kind = "pre-installation checks" if pre else "checks"
    if code == 0:
        verdict = f"\n{Mark.OK} {len(results)} {kind} passed"
        verdict += f" ({warned} warning(s))" if warned else ""
    elif code == 2:
        verdict = f"\n{Mark.FAIL} a backend could not be reached; {failed} check(s) failed"
    else:
        verdict = f"\n{Mark.FAIL} {failed} of {len(results)} {kind} failed"
    out.append(verdict + f" (exit {code})", style="green" if code == 0 else "bold red")
    return out


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
