"""render(): parse + execute one template with consul-template's function set.

The function table is rebuilt per render because Vault/Consul/Nomad/env functions close over the
render's context and its dependency list; that list is how a caller learns when to re-render.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from devstack.template import consulfuncs, nomadservices, nomadvars, vaultfuncs
from devstack.template.context import RenderContext, RenderResult, RenderState
from devstack.template.errors import TemplateError
from devstack.template.exec import Executor
from devstack.template.funcs_builtin import BUILTINS
from devstack.template.funcs_ct import UNSUPPORTED, helpers
from devstack.template.parser import parse


def _denied(name: str) -> Any:
    def fail(*_: Any) -> Any:
        raise TemplateError(f"function {name!r} is disabled by the client's function_denylist")

    return fail


def build_funcs(state: RenderState, denylist: tuple[str, ...] = ()) -> dict[str, Any]:
    funcs: dict[str, Any] = {name: None for name in UNSUPPORTED}
    funcs.update(BUILTINS)
    funcs.update(helpers(state))
    funcs.update(
        {
            "pkiCert": functools.partial(vaultfuncs.pki_cert, state),
            "secret": functools.partial(vaultfuncs.secret, state),
            "service": functools.partial(consulfuncs.service, state),
            "key": functools.partial(consulfuncs.key, state),
            "keyOrDefault": functools.partial(consulfuncs.key_or_default, state),
            "nomadVar": functools.partial(nomadvars.nomad_var, state),
            "nomadVarExists": functools.partial(nomadvars.nomad_var_exists, state),
            "nomadVarList": functools.partial(nomadvars.nomad_var_list, state),
            "nomadVarListSafe": functools.partial(nomadvars.nomad_var_list_safe, state),
            "nomadService": functools.partial(nomadservices.nomad_service, state),
        }
    )
    for name in denylist:
        funcs[name] = _denied(name)
    return funcs


def render_sync(
    text: str, ctx: RenderContext, function_denylist: tuple[str, ...] = ()
) -> RenderResult:
    """Render `text`; raises TemplateError (message starts with `template:`) on any failure."""
    state = RenderState(ctx)
    funcs = build_funcs(state, function_denylist)
    tree = parse(text, funcs, ctx.name, ctx.left_delim, ctx.right_delim)
    out = Executor(funcs, ctx.name, ctx.error_on_missing_key).execute(tree, None)
    return RenderResult(out, state.deps, state.files)


async def render(
    text: str, ctx: RenderContext, function_denylist: tuple[str, ...] = ()
) -> RenderResult:
    """render_sync in a worker thread (Vault/Consul calls block)."""
    return await asyncio.to_thread(render_sync, text, ctx, function_denylist)
