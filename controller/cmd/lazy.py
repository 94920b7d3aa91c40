"""A click group that imports a command's module only when that command is asked for.

``controller run`` is the long-running process: importing every other command with it
(``controllerctl``'s ctl, deploy and dev code, rich's live display) cost ~2.5 MB of resident
memory for the whole of its life and ~80 modules it never runs. Commands are named here by
``module:attribute`` and resolved by click when it parses the command line, lists them for
``--help``, or a test asks for one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click


class LazyGroup(click.Group):
    """``lazy`` maps each command's name to ``"package.module:attribute"``."""

    def __init__(self, *args: object, lazy: Mapping[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command
