"""What ``controllerctl check`` runs, in which order, and the verdict it prints.

Nomad first (nothing else can be judged without it), then Consul and Vault; the PKI only when
Vault answered, and the controller's own health only after an install (not with ``--pre``) and
only when Nomad answered. The text is one line per check, grouped by section, linkerd style,
with a hint under each failure and the exit code on the last line.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from controller.config import Settings
from controller.ctl.checks import CheckResult, Mark, exit_code
from controller.ctl.common import open_clients
from controller.ctl.probes_consul import consul_checks
from controller.ctl.probes_controller import controller_checks, rotation_checks
from controller.ctl.probes_nomad import nomad_checks, utcnow
from controller.ctl.probes_vault import pki_checks, vault_checks
from controller.ctl.probes_workload import workload_checks

_STYLE = {Mark.OK: "green", Mark.FAIL: "bold red", Mark.WARN: "yellow"}


async def run_checks(settings: Settings, *, pre: bool, status_url: str | None) -> list[CheckResult]:
    """Every check that applies, in the order printed; a dead backend is a result, not a raise."""
    async with open_clients(settings) as clients:
        results = await nomad_checks(clients, pre, utcnow)
        nomad_up = not any(r.unreachable for r in results)
        results += await consul_checks(clients)
        vault = await vault_checks(clients, pre, utcnow)
        results += vault
        if not pre and not any(r.unreachable for r in vault):
            results += await pki_checks(clients, utcnow)
            results += await workload_checks(clients)
        if not pre and nomad_up:
            results += await rotation_checks(clients, utcnow)
            results += await controller_checks(clients, status_url, utcnow)
        return results


def render_text(results: Sequence[CheckResult], *, pre: bool) -> Text:
    """The results by section, hints under failures, and the verdict with its exit code."""
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
