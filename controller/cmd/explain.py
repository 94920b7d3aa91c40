"""``controllerctl explain JOB``: print the story of one job (text, or --output json).

Exit codes: 0 explained, 1 the job does not exist (its status record, if any, is still shown),
2 Nomad could not be reached or read.
"""

from __future__ import annotations

import asyncio
import json
import sys

import click

from controller.ctl.common import EXIT_DRIFT, EXIT_OK, fail, load_settings
from controller.ctl.explain import explain_job
from controller.ctl.explain_text import render_text
from controller.nomad.errors import NomadError


@click.command("explain")
@click.argument("job")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text")
@click.option("--diff", "show_diff", is_flag=True, help="Show the planned change as a diff.")
def explain(job: str, namespace: str, output: str, show_diff: bool) -> None:
    """The story of one job: spec, plan, conditions, remediations, nginx.conf."""
    settings = load_settings("explain")
    try:
        doc = asyncio.run(explain_job(settings, namespace, job))
    except NomadError as exc:
        fail("explain", 2, f"cannot read Nomad: {exc}")
    if output == "json":
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(doc, show_diff=show_diff), nl=False)
    sys.exit(EXIT_OK if doc["found"] else EXIT_DRIFT)
