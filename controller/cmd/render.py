"""``controllerctl render``: the injection, offline, for CI.

A pipeline that submits the job already injected gives the controller nothing to do: no second
job version, no second deployment. Input is the Nomad API JSON of a job — bare (``{"ID": …}``)
or wrapped for register (``{"Job": {…}}``) — and the output has the same shape, pretty-printed,
keys in Nomad's order. HCL is converted by the cluster's own parser (``POST /v1/jobs/parse``),
because only Nomad knows its HCL exactly (see ``controller.ctl.jobfile``).

Exit codes: 0 done (also: not meshed, output == input), 1 invalid mesh spec (reason on stderr,
nothing on stdout), 2 unreadable input or settings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from controller.config import ConfigError, load_mesh_config
from controller.ctl.jobfile import Unreadable, load_job, read_source, transform
from controller.ctl.jobtext import diff, pretty
from crds_equivalent.config import MeshConfig
from reconcilers.injection.inject import UndoError
from reconcilers.injection.plan import Invalid

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def _config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--<field>`` option per MeshConfig field; they override ``MESH_<FIELD>``."""
    for name, info in reversed(list(MeshConfig.model_fields.items())):
        option = click.option(
            "--" + name.replace("_", "-"),
            name,
            default=None,
            metavar="VALUE",
            help=f"{info.description} [env MESH_{name.upper()}; default {info.default}]",
        )
        command = option(command)
    return command


@click.command("render")
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option("--uninject", "undo", is_flag=True, help="Give back the user's job instead.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff against the input.")
@_config_options
def render(source: str, undo: bool, show_diff: bool, **settings: str | None) -> None:
    """Print the meshed (or with --uninject, the un-meshed) job for FILE or stdin."""
    try:
        config = load_mesh_config(overrides={k: v for k, v in settings.items() if v is not None})
    except ConfigError as err:
        _fail(EXIT_UNREADABLE, f"invalid setting: {err}")
    try:
        text = read_source(source)
        document, job, from_hcl = load_job(text)
    except Unreadable as err:
        _fail(EXIT_UNREADABLE, f"{_name(source)}: {err}")
    try:
        result = transform(job, config, undo)
    except UndoError as err:
        _fail(EXIT_INVALID, f"{_name(source)}: {err}")
    if isinstance(result, Invalid):
        _fail(EXIT_INVALID, f"{_name(source)}: invalid mesh spec: {result.reason}")
    for reason in result.refused:  # other groups are meshed: say which are not, and why
        click.echo(f"controllerctl render: {_name(source)}: not meshed: {reason}", err=True)
    if document is None:
        output: Any = {"Job": result.job} if from_hcl else result.job
    else:
        output = {**document, "Job": result.job}
    rendered = pretty(output)
    if show_diff:
        before = pretty(document if document is not None else job)
        click.echo(diff(before, rendered, _name(source)), nl=False)
    else:
        click.echo(rendered, nl=False)


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"controllerctl render: {message}", err=True)
    sys.exit(code)


def _name(source: str) -> str:
    return "<stdin>" if source == "-" else source
