"""What ``controller run`` imports before it serves: only what the running controller uses.

Every imported module stays resident for the process's life (the import base is most of the
controller's memory at small N). hvac and requests serve only ``VaultClient.patch`` (PKI
administration); controllerctl's commands (ctl, deploy) and ``controller dev`` never run in
``controller run``; settings are read without pydantic-settings. A fresh interpreter is
asked, since this test process imports everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
from click.testing import CliRunner

from controller.cmd import controller, controllerctl

NOT_AT_STARTUP = (
    "hvac",
    "requests",
    "pydantic_settings",
    "controller.ctl",
    "controller.deploy",
    "controller.dev",
)


def imported_by(statement: str) -> set[str]:
    probe = f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


def test_controller_run_imports_no_admin_or_operator_code() -> None:
    modules = imported_by("from controller.cmd import controller_main, run")
    assert "controller.app" in modules  # the probe did import what run runs
    assert [m for m in NOT_AT_STARTUP if m in modules] == []


def test_controller_process_holds_no_rich_and_rich_still_imports() -> None:
    """``controller run`` through the console entry point imports structlog with rich hidden
    (controller.cmd.lean): neither rich nor pygments is resident; rich is not blocked for
    later, and structlog fell back to the plain traceback the controller renders with anyway."""
    probe = (
        "import atexit, json, sys\n"
        "def report():\n"
        "    before = sorted(sys.modules)\n"
        "    import rich, structlog.dev\n"
        "    plain = structlog.dev.default_exception_formatter is structlog.dev.plain_traceback\n"
        "    sys.stderr.write(json.dumps({'modules': before, 'rich': rich.__name__,"
        " 'plain': plain}))\n"
        "atexit.register(report)\n"
        "sys.argv = ['controller', 'run', '--help']\n"
        "from controller.cmd import controller_main\n"
        "controller_main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(out.stderr)
    assert "Usage: controller run" in out.stdout
    assert "controller.app" in found["modules"]  # the command's module was imported
    assert [m for m in found["modules"] if m.split(".")[0] in ("rich", "pygments")] == []
    assert found["rich"] == "rich"
    assert found["plain"] is True


def test_every_command_resolves_and_is_listed() -> None:
    runner = CliRunner()
    ctx_ctl = click.Context(controllerctl)
    ctx_run = click.Context(controller)
    names = {
        "controllerctl": controllerctl.list_commands(ctx_ctl),
        "controller": controller.list_commands(ctx_run),
    }
    assert names == {
        "controllerctl": [
            "bootstrap-pki",
            "check",
            "explain",
            "graph",
            "install",
            "render",
            "rotate-ca",
            "status",
        ],
        "controller": ["dev", "run"],
    }
    for group, ctx in ((controllerctl, ctx_ctl), (controller, ctx_run)):
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            assert command.name == name
    help_text = runner.invoke(controllerctl, ["rotate-ca", "--help"])
    assert help_text.exit_code == 0
    assert "Usage: controllerctl rotate-ca" in help_text.output
