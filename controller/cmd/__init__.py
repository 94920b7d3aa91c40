"""Entry points: ``controller`` (the long-running process) and ``controllerctl`` (operators, CI).

One click module per command, and only click in them: options, calling the logic (which lives
beside the adapters it uses: ``controller.ctl``, ``controller.deploy``, ``controller.dev``,
``controller.app``), printing and exit codes. Commands are only registered here and never
import one another, so adding or changing a command never touches another's code.

The submodules are imported as modules (not their command objects), so that
``controller.cmd.status`` stays the module and not the click command of the same name.
"""

from __future__ import annotations

import click

from controller.cmd import (
    bootstrap_pki,
    check,
    dev,
    explain,
    graph,
    install,
    render,
    rotate_ca,
    run,
    status,
)

# The distribution's version, read by click through importlib.metadata when the option is used
# (the image's test compares it with the installed package's metadata).
DISTRIBUTION = "nomad-tls-mesh"


@click.group("controllerctl")
@click.version_option(package_name=DISTRIBUTION, message="%(prog)s %(version)s")
def controllerctl() -> None:
    """Inspect and operate the nomad-tls-mesh controller."""


@click.group("controller")
@click.version_option(package_name=DISTRIBUTION, message="%(prog)s %(version)s")
def controller() -> None:
    """The nomad-tls-mesh controller."""


controllerctl.add_command(render.render)
controllerctl.add_command(status.status)
controllerctl.add_command(check.check)
controllerctl.add_command(explain.explain)
controllerctl.add_command(graph.graph)
controllerctl.add_command(bootstrap_pki.bootstrap_pki_cmd)
controllerctl.add_command(rotate_ca.rotate_ca)
controllerctl.add_command(install.install_cmd)
controller.add_command(run.run)
controller.add_command(dev.dev)


def controllerctl_main() -> None:
    controllerctl()


def controller_main() -> None:
    controller()
