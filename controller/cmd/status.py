"""``controllerctl status``: the drift report (table, wide or JSON), once or --watch.

Exit codes: 0 everything in sync, 1 drift (including "nobody leads"), 2 Nomad, Consul or Vault
could not be reached or read. With --watch the exit code is the last report's, on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import sys
import time

import click
from rich.live import Live

from controller.config import Settings
from controller.ctl.common import load_settings
from controller.ctl.gather import StatusOptions, one_report
from controller.ctl.table import make_console, report_view, to_json
from crds_equivalent.status_report import StatusReport


def _emit(report: StatusReport, output: str) -> None:
    if output == "json":
        click.echo(to_json(report), nl=False)
    else:
        make_console().print(report_view(report, wide=output == "wide"))


@click.command("status")
@click.option(
    "--namespace", "-n", default="*", show_default=True, help="A namespace, or * for all."
)
@click.option("--job", "job", default=None, help="Only this job ID.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "wide", "json"]),
    default="table",
    show_default=True,
    help="table, wide (every drift reason, issuer, port) or json (schema: "
    "crds_equivalent/schema/status-report.schema.json).",
)
@click.option("--watch", "-w", is_flag=True, help="Redraw until Ctrl-C.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between redraws.")
@click.option(
    "--live/--no-live",
    default=True,
    show_default=True,
    help="Also check the live world (Nomad jobs and allocations, Consul, Vault) instead of "
    "trusting only the status records.",
)
@click.option(
    "--status-url",
    envvar="MESH_STATUS_URL",
    default=None,
    help="The leader's /status endpoint, for its event index and queue depth "
    "[env MESH_STATUS_URL].",
)
def status(
    namespace: str,
    job: str | None,
    output: str,
    watch: bool,
    interval: float,
    live: bool,
    status_url: str | None,
) -> None:
    """One row per meshed (job, group, service): desired vs injected vs observed."""
    settings = load_settings("status")
    options = StatusOptions(namespace=namespace, job=job, live=live, status_url=status_url)
    if not watch:
        report = asyncio.run(one_report(settings, options))
        _emit(report, output)
        sys.exit(report.exit_code)
    sys.exit(_watch(settings, options, output, interval))


def _watch(settings: Settings, options: StatusOptions, output: str, interval: float) -> int:
    console = make_console()
    code = 0
    try:
        if output == "json" or not console.is_terminal:
            while True:
                report = asyncio.run(one_report(settings, options))
                code = report.exit_code
                _emit(report, output)
                time.sleep(interval)
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                report = asyncio.run(one_report(settings, options))
                code = report.exit_code
                live.update(report_view(report, wide=output == "wide"), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        return code
