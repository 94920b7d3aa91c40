"""Execute a parsed template: Go text/template semantics for dot, variables, pipes and control.

Functions come in as a plain name -> callable table (Go builtins + consul-template's), so this
module knows nothing about Vault or Consul. Field access follows Go: a missing map key is
`<no value>` (or an error with error_on_missing_key), an unknown struct field is an error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from devstack.template.errors import TemplateError
from devstack.template.gofmt import MISSING, GoStruct, go_str, go_type, sort_key, truth
from devstack.template.parser import (
    Action,
    Arg,
    Branch,
    Chain,
    Command,
    Dot,
    Field,
    Ident,
    Literal,
    Loop,
    Nil,
    Node,
    Pipe,
    Text,
    Variable,
)

Func = Callable[..., Any]


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Executor:
    def __init__(
        self, funcs: Mapping[str, Func], name: str = "template", error_on_missing_key: bool = False
    ) -> None:
        self.funcs, self.name, self.strict_keys = funcs, name, error_on_missing_key
        self.vars: list[tuple[str, Any]] = []
        self.out: list[str] = []
        self.line = 0

    def fail(self, msg: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.line}: {msg}")

    def execute(self, nodes: list[Node], data: Any) -> str:
        self.vars = [("$", data)]
        self.walk(nodes, data)
        return "".join(self.out)

    # ---- statements ---------------------------------------------------------------------------

    def walk(self, nodes: list[Node], dot: Any) -> None:
        for n in nodes:
            if isinstance(n, Text):
                self.out.append(n.text)
            elif isinstance(n, Action):
                val = self.pipe(n.pipe, dot)
                if not n.pipe.decl:
                    self.out.append(go_str(val))
            elif isinstance(n, Branch):
                self.branch(n, dot)
            elif isinstance(n, Loop):
                raise _Break() if n.kind == "break" else _Continue()

    def branch(self, n: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            if n.kind == "range":
                self.range(n, dot)
                return
            val = self.pipe(n.pipe, dot)
            if truth(val):
                self.walk(n.body, val if n.kind == "with" else dot)
            elif n.else_body is not None:
                self.walk(n.else_body, dot)
        finally:
            del self.vars[mark:]

    def range(self, n: Branch, dot: Any) -> None:
        val = self.pipe(n.pipe, dot, declare=False)
        items: list[tuple[Any, Any]]
        if val is None or val is MISSING:
            items = []
        elif isinstance(val, list | tuple):
            items = list(enumerate(val))
        elif isinstance(val, dict):
            items = [(k, val[k]) for k in sorted(val, key=sort_key)]
        elif isinstance(val, int) and not isinstance(val, bool):
            items = [(i, i) for i in range(val)]
        else:
            self.line = n.pipe.line
            raise self.fail(f"range can't iterate over {go_str(val)}")
        if not items:
            if n.else_body is not None:
                self.walk(n.else_body, dot)
            return
        mark = len(self.vars)
        for key, elem in items:
            del self.vars[mark:]
            if len(n.pipe.decl) == 1:
                self.vars.append((n.pipe.decl[0], elem))
            elif len(n.pipe.decl) == 2:
                self.vars.extend([(n.pipe.decl[0], key), (n.pipe.decl[1], elem)])
            try:
                self.walk(n.body, elem)
            except _Continue:
                continue
            except _Break:
                break

    # ---- expressions --------------------------------------------------------------------------

    def pipe(self, p: Pipe, dot: Any, declare: bool = True) -> Any:
        self.line = p.line
        val: Any = MISSING
        for i, cmd in enumerate(p.cmds):
            val = self.command(cmd, dot, val, i > 0)
        if p.decl and declare:
            if p.is_assign:
                self.assign(p.decl[0], val)
            else:
                self.vars.append((p.decl[0], val))
        return val

    def assign(self, name: str, val: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, val)
                return
        raise self.fail(f"undefined variable: {name}")

    def command(self, cmd: Command, dot: Any, final: Any, has_final: bool) -> Any:
        self.line = cmd.line
        first = cmd.args[0]
        if isinstance(first, Ident):
            return self.call(first.name, cmd.args[1:], dot, final, has_final)
        if len(cmd.args) > 1 or has_final:
            raise self.fail(f"can't give argument to non-function {_show(first)}")
        return self.arg(first, dot)

    def call(
        self, name: str, arg_nodes: tuple[Arg, ...], dot: Any, final: Any, has_final: bool
    ) -> Any:
        if name in ("and", "or"):
            return self.and_or(name, arg_nodes, dot, final, has_final)
        args = [self.arg(a, dot) for a in arg_nodes]
        if has_final:
            args.append(final)
        line = self.line
        try:
            return self.funcs[name](*args)
        except TemplateError as e:
            msg = str(e).removeprefix("template: ")
            raise type(e)(f"template: {self.name}:{line}: error calling {name}: {msg}") from e
        except TypeError as e:
            raise TemplateError(
                f"template: {self.name}:{line}: wrong number of args for {name}: {e}"
            ) from e
        except Exception as e:
            raise TemplateError(
                f"template: {self.name}:{line}: error calling {name}: {type(e).__name__}: {e}"
            ) from e

    def and_or(
        self, name: str, arg_nodes: tuple[Arg, ...], dot: Any, final: Any, has_final: bool
    ) -> Any:
        thunks: list[Callable[[], Any]] = [functools.partial(self.arg, a, dot) for a in arg_nodes]
        if has_final:
            thunks.append(lambda: final)
        if not thunks:
            raise self.fail(f"wrong number of args for {name}: want at least 1 got 0")
        val: Any = None
        for t in thunks:
            val = t()
            if truth(val) != (name == "and"):
                return val
        return val

    def arg(self, node: Arg, dot: Any) -> Any:
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Nil):
            return None
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Field):
            return self.fields(dot, node.names)
        if isinstance(node, Variable):
            return self.fields(self.lookup(node.name), node.names)
        if isinstance(node, Ident):
            return self.call(node.name, (), dot, None, False)
        if isinstance(node, Chain):
            return self.fields(self.arg(node.node, dot), node.names)
        return self.pipe(node, dot, declare=False)

    def lookup(self, name: str) -> Any:
        for var, val in reversed(self.vars):
            if var == name:
                return val
        raise self.fail(f"undefined variable: {name}")

    def fields(self, val: Any, names: tuple[str, ...]) -> Any:
        for name in names:
            val = self.field(val, name)
        return val

    def field(self, val: Any, name: str) -> Any:
        if name in getattr(type(val), "go_methods", ()):  # a method wins over a key or field
            try:
                return getattr(val, name)()
            except TemplateError as e:
                raise self.fail(f"error calling {name}: {e}") from e
        if isinstance(val, dict):
            if name in val:
                return val[name]
            if self.strict_keys:
                raise self.fail(f'map has no entry for key "{name}"')
            return MISSING
        if isinstance(val, GoStruct):
            if not name[:1].isupper() or not hasattr(val, name):
                raise self.fail(f"can't evaluate field {name} in type {val.go_type}")
            return getattr(val, name)
        if val is None or val is MISSING:
            raise self.fail(f"nil pointer evaluating interface {{}}.{name}")
        raise self.fail(f"can't evaluate field {name} in type {go_type(val)}")


def _show(node: Arg) -> str:
    if isinstance(node, Literal):
        return repr(node.value)
    if isinstance(node, Field):
        return "." + ".".join(node.names)
    if isinstance(node, Variable):
        return node.name
    return type(node).__name__.lower()
