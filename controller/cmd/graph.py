"""``controllerctl graph``: the service graph of the mesh as Graphviz DOT, or a PNG.

Exit codes: 0 drawn, 1 a PNG was asked for and Graphviz could not make it, 2 Nomad could not
be reached or read.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from controller.ctl.common import EXIT_DRIFT, EXIT_OK, EXIT_UNREACHABLE, fail, load_settings
from controller.ctl.graph_io import GraphvizError, graph_dot, write_png
from controller.nomad.errors import NomadError


@click.command("graph")
@click.option(
    "--namespace", "-n", default="*", show_default=True, help="A namespace, or * for all."
)
@click.option(
    "--png",
    "png",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write a PNG here (needs Graphviz's dot on PATH) instead of printing DOT.",
)
def graph(namespace: str, png: Path | None) -> None:
    """Who calls whom through the mesh: which edges are mTLS, which are refused."""
    settings = load_settings("graph")
    try:
        dot_text = asyncio.run(graph_dot(settings, namespace))
    except NomadError as exc:
        fail("graph", EXIT_UNREACHABLE, f"cannot read Nomad: {exc}")
    if png is None:
        click.echo(dot_text, nl=False)
        sys.exit(EXIT_OK)
    try:
        write_png(dot_text, png)
    except GraphvizError as exc:
        fail("graph", EXIT_DRIFT, str(exc))
    click.echo(f"wrote {png}")
    sys.exit(EXIT_OK)
