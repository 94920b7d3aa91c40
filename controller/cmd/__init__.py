"""Entry points: ``controller`` (the long-running process) and ``controllerctl`` (operators, CI).

One click module per command, and only click in them: options, calling the logic (which lives
beside the adapters it uses: ``controller.ctl``, ``controller.deploy``, ``controller.dev``,
``controller.app``), printing and exit codes. Commands are only registered here and never
import one another, so adding or changing a command never touches another's code.

They are registered by name (:class:`controller.cmd.lazy.LazyGroup`), not imported here, so a
process imports only the command it runs: ``controller run`` stays free of controllerctl's code.
"""

from __future__ import annotations

import click

from controller.cmd.lazy import LazyGroup
from controller.cmd.lean import import_structlog_without_rich

# The distribution's version, read by click through importlib.metadata when the option is used
# (the image's test compares it with the installed package's metadata).
DISTRIBUTION = "nomad-tls-mesh"

CONTROLLERCTL_COMMANDS = {
    "render": "controller.cmd.render:render",
    "status": "controller.cmd.status:status",
    "check": "controller.cmd.check:check",
    "explain": "controller.cmd.explain:explain",
    "graph": "controller.cmd.graph:graph",
    "bootstrap-pki": "controller.cmd.bootstrap_pki:bootstrap_pki_cmd",
    "rotate-ca": "controller.cmd.rotate_ca:rotate_ca",
    "install": "controller.cmd.install:install_cmd",
}
CONTROLLER_COMMANDS = {
    "run": "controller.cmd.run:run",
    "dev": "controller.cmd.dev:dev",
}


@click.group("controllerctl", cls=LazyGroup, lazy=CONTROLLERCTL_COMMANDS)
@click.version_option(package_name=DISTRIBUTION, message="%(prog)s %(version)s")
def controllerctl() -> None:
    """Inspect and operate the nomad-tls-mesh controller."""


@click.group("controller", cls=LazyGroup, lazy=CONTROLLER_COMMANDS)
@click.version_option(package_name=DISTRIBUTION, message="%(prog)s %(version)s")
def controller() -> None:
    """The nomad-tls-mesh controller."""


def controllerctl_main() -> None:
    controllerctl()


def controller_main() -> None:
    # before the command's module imports structlog (see controller.cmd.lean)
    import_structlog_without_rich()
    controller()
