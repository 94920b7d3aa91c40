"""Entry points: ``controller`` (the long-running process) and ``controllerctl`` (operators, CI).

A thin dispatcher: each command lives in its own module and is only registered here, so adding
a command never touches another's code.
"""

from __future__ import annotations

import click

from controller.ctl.check_cmd import check
from controller.ctl.explain_cmd import explain
from controller.ctl.status_cmd import status
from controller.devmode import dev
from controller.install_cmd import install_cmd
from controller.pki_cmd import bootstrap_pki_cmd
from controller.render_cmd import render
from controller.rotate_cmd import rotate_ca
from controller.run_cmd import run


@click.group("controllerctl")
def controllerctl() -> None:
    """Inspect and operate the nomad-tls-mesh controller."""


@click.group("controller")
def controller() -> None:
    """The nomad-tls-mesh controller."""


controllerctl.add_command(render)
controllerctl.add_command(status)
controllerctl.add_command(check)
controllerctl.add_command(explain)
controllerctl.add_command(bootstrap_pki_cmd)
controllerctl.add_command(rotate_ca)
controllerctl.add_command(install_cmd)
controller.add_command(run)
controller.add_command(dev)


def controllerctl_main() -> None:
    controllerctl()


def controller_main() -> None:
    controller()
