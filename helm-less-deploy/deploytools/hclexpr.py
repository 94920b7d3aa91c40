"""Evaluate the HCL2 values python-hcl2 hands back, the way Nomad's jobspec2 parser would.

python-hcl2 parses the syntax but evaluates nothing: a quoted string comes back with its quotes,
escapes and ``${...}`` interpolations as written, an expression as ``"${...}"``. To turn our job
file into API JSON we need the subset of HCL2 semantics the file uses: string templates with
escapes, ``var.*`` / ``local.*`` references, ``== != && || !``, the conditional ``? :``, lists,
objects and ``null``. Like jobspec2, interpolations of names Nomad resolves at run time
(``${NOMAD_ADDR_http}``, ``${attr.unique.hostname}``, ``${node.class}``, ``${meta.x}``) are kept
verbatim for the client to fill in. Anything else is refused with a clear error instead of being
guessed: a new construct in the job file must be taught here first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_RUNTIME_REF = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)(\.[A-Za-z0-9_.-]+)?\s*$")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_OPERATORS = ("==", "!=", "&&", "||", "!", "?", ":", "(", ")", "[", "]", ",", ".")


class HclError(ValueError):
    """A value the converter cannot evaluate (unsupported construct or unknown variable)."""


@dataclass
class Scope:
    """What ``var.X`` and ``local.X`` resolve to."""

    variables: Mapping[str, Any] = field(default_factory=dict)
    locals: Mapping[str, Any] = field(default_factory=dict)


def evaluate(raw: Any, scope: Scope) -> Any:
    """One python-hcl2 value -> its HCL2 value (str, int, float, bool, None, list, dict)."""
    if raw is None or isinstance(raw, bool | int | float):
        return raw
    if isinstance(raw, list):
        return [evaluate(item, scope) for item in raw]
    if isinstance(raw, dict):
        return {_key(k): evaluate(v, scope) for k, v in raw.items() if not k.startswith("__")}
    if not isinstance(raw, str):
        raise HclError(f"unexpected value {raw!r}")
    if raw.startswith('"<<') and raw.endswith('"'):
        return render_template(heredoc_body(raw[1:-1]), scope, escapes=False)
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        return render_template(raw[1:-1], scope)
    if raw.startswith("${") and raw.endswith("}"):
        return evaluate_expression(raw[2:-1], scope)
    raise HclError(f"bare expression {raw!r} is not supported here")


def _key(raw: str) -> str:
    return raw[1:-1] if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"') else raw


# -- string templates -----------------------------------------------------------------------------


def heredoc_body(raw: str) -> str:
    """``<<EOT``/``<<-EOT`` as python-hcl2 keeps it -> the text (before interpolation).

    HCL keeps the newline that ends the last line; the ``<<-`` form removes the indentation of
    the least-indented non-blank line from every line.
    """
    header, _, rest = raw.partition("\n")
    marker = header.lstrip("<-").strip()
    lines = rest.split("\n")
    if not lines or lines[-1].strip() != marker:
        raise HclError(f"heredoc {header!r} is not closed by {marker!r}")
    lines = lines[:-1]
    if header.startswith("<<-"):
        indents = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
        cut = min(indents, default=0)
        lines = [line[cut:] for line in lines]
    return "".join(line + "\n" for line in lines)


def render_template(body: str, scope: Scope, *, escapes: bool = True) -> Any:
    """The inside of a quoted HCL string (heredocs: ``escapes=False``, backslashes are text).

    A string that is exactly one ``${expr}`` yields the expression's value unchanged (HCL's
    rule), so ``"${var.list}"`` stays a list."""
    parts: list[str | tuple[str, Any]] = []
    text: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and escapes:
            i = _escape(body, i, text)
            continue
        if body.startswith("$${", i) or body.startswith("%%{", i):
            text.append(body[i + 1 : i + 3])
            i += 3
            continue
        if body.startswith("%{", i):
            raise HclError("template directives (%{...}) are not supported")
        if body.startswith("${", i):
            end = _matching_brace(body, i + 2)
            if text:
                parts.append("".join(text))
                text = []
            inner = body[i + 2 : end]
            parts.append((inner, _interpolate(inner, scope)))
            i = end + 1
            continue
        text.append(ch)
        i += 1
    if text:
        parts.append("".join(text))
    if len(parts) == 1 and isinstance(parts[0], tuple):
        return parts[0][1]
    return "".join(p if isinstance(p, str) else _stringify(p[1], p[0]) for p in parts)


def _escape(body: str, i: int, out: list[str]) -> int:
    nxt = body[i + 1 : i + 2]
    if nxt in _ESCAPES:
        out.append(_ESCAPES[nxt])
        return i + 2
    if nxt in ("u", "U"):
        width = 4 if nxt == "u" else 8
        digits = body[i + 2 : i + 2 + width]
        if len(digits) != width:
            raise HclError(f"short unicode escape in {body!r}")
        out.append(chr(int(digits, 16)))
        return i + 2 + width
    raise HclError(f"invalid escape \\{nxt} in {body!r}")


class _Runtime(str):
    """An interpolation Nomad resolves on the client: kept verbatim as ``${...}``."""


def _interpolate(inner: str, scope: Scope) -> Any:
    match = _RUNTIME_REF.match(inner)
    if match and match.group(1) not in ("var", "local"):
        return _Runtime("${" + inner.strip() + "}")
    return evaluate_expression(inner, scope)


def _stringify(value: Any, source: str) -> str:
    if isinstance(value, _Runtime | str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise HclError(f"${{{source}}} is {value!r}, which cannot be part of a string")


def _matching_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing an interpolation opened just before ``start``."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = _string_end(text, i) + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise HclError(f"unterminated interpolation in {text!r}")


def _string_end(text: str, start: int) -> int:
    """Index of the quote closing the string that opens at ``start``."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if text.startswith("${", i):
            i = _matching_brace(text, i + 2) + 1
            continue
        if ch == '"':
            return i
        i += 1
    raise HclError(f"unterminated string in {text!r}")


# -- expressions ----------------------------------------------------------------------------------


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            end = _string_end(text, i)
            out.append(("str", text[i + 1 : end]))
            i = end + 1
            continue
        number = _NUMBER.match(text, i)
        if number:
            out.append(("num", number.group(0)))
            i = number.end()
            continue
        ident = _IDENT.match(text, i)
        if ident:
            out.append(("id", ident.group(0)))
            i = ident.end()
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is None:
            raise HclError(f"unsupported syntax at {text[i:]!r} in ${{{text}}}")
        out.append(("op", op))
        i += len(op)
    return out


class _Parser:
    """Recursive descent over the expression subset; evaluates as it parses."""

    def __init__(self, text: str, scope: Scope) -> None:
        self.text = text
        self.scope = scope
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self, op: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (op is not None and tok != ("op", op)):
            raise HclError(f"expected {op or 'a value'} in ${{{self.text}}}")
        self.pos += 1
        return tok

    def at(self, op: str) -> bool:
        return self.peek() == ("op", op)

    def parse(self) -> Any:
        value = self.conditional()
        if self.peek() is not None:
            raise HclError(f"unexpected {self.peek()} in ${{{self.text}}}")
        return value

    def conditional(self) -> Any:
        cond = self.binary(0)
        if not self.at("?"):
            return cond
        self.take("?")
        yes = self.conditional()
        self.take(":")
        no = self.conditional()
        if not isinstance(cond, bool):
            raise HclError(f"condition is not a bool in ${{{self.text}}}")
        return yes if cond else no

    _LEVELS = (("||",), ("&&",), ("==", "!="))

    def binary(self, level: int) -> Any:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in self._LEVELS[level]:
            self.pos += 1
            right = self.binary(level + 1)
            left = _apply(tok[1], left, right, self.text)
        return left

    def unary(self) -> Any:
        if self.at("!"):
            self.take("!")
            value = self.unary()
            if not isinstance(value, bool):
                raise HclError(f"! needs a bool in ${{{self.text}}}")
            return not value
        return self.postfix(self.primary())

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return render_template(value, self.scope)
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "op" and value == "(":
            inner = self.conditional()
            self.take(")")
            return inner
        if kind == "op" and value == "[":
            items: list[Any] = []
            while not self.at("]"):
                items.append(self.conditional())
                if not self.at("]"):
                    self.take(",")
            self.take("]")
            return items
        if kind == "id":
            return self.reference(value)
        raise HclError(f"unexpected {value!r} in ${{{self.text}}}")

    def reference(self, root: str) -> Any:
        if root in ("true", "false"):
            return root == "true"
        if root == "null":
            return None
        tables = {"var": self.scope.variables, "local": self.scope.locals}
        if root not in tables or not self.at("."):
            raise HclError(f"unknown reference {root!r} in ${{{self.text}}} (var.*, local.* only)")
        self.take(".")
        name = self.take()[1]
        if name not in tables[root]:
            raise HclError(f"{root}.{name} is not defined")
        return tables[root][name]

    def postfix(self, value: Any) -> Any:
        while self.at("[") or self.at("."):
            if self.take()[1] == "[":
                index = self.conditional()
                self.take("]")
                value = value[index]
            else:
                value = value[self.take()[1]]
        return value


def _apply(op: str, left: Any, right: Any, text: str) -> Any:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if not isinstance(left, bool) or not isinstance(right, bool):
        raise HclError(f"{op} needs bools in ${{{text}}}")
    return (left and right) if op == "&&" else (left or right)


def evaluate_expression(text: str, scope: Scope) -> Any:
    """The value of one HCL2 expression (the inside of ``${...}``)."""
    return _Parser(text, scope).parse()
