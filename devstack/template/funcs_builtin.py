"""Go text/template's predefined functions (and/or are special-cased in the executor)."""

from __future__ import annotations

import html
import urllib.parse
from typing import Any

from devstack.template.errors import TemplateError
from devstack.template.gofmt import MISSING, go_str, go_type, sprint, sprintf, truth


def _kind(v: Any) -> str:
    if v is None or v is MISSING:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return go_type(v)


def _comparable(a: Any, b: Any) -> None:
    ka, kb = _kind(a), _kind(b)
    if ka != kb and "nil" not in (ka, kb):
        raise TemplateError("incompatible types for comparison")
    if ka not in ("nil", "bool", "number", "string"):
        raise TemplateError(f"invalid type for comparison: {go_type(a)}")


def eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("missing argument for comparison")
    for b in others:
        _comparable(a, b)
        if (a is None or a is MISSING) and (b is None or b is MISSING):
            return True
        if a == b and not (a is None or a is MISSING or b is None or b is MISSING):
            return True
    return False


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


def _ordered(a: Any, b: Any) -> None:
    _comparable(a, b)
    if _kind(a) not in ("number", "string"):
        raise TemplateError(f"invalid type for comparison: {go_type(a)}")


def lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a < b)


def le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a <= b)


def gt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a > b)


def ge(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a >= b)


def not_(a: Any) -> bool:
    return not truth(a)


def length(v: Any) -> int:
    if isinstance(v, str | list | tuple | dict):
        return len(v)
    raise TemplateError(f"len of type {go_type(v)}")


def index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k, None)
        elif isinstance(v, list | tuple | str):
            if not isinstance(k, int) or isinstance(k, bool):
                raise TemplateError(f"cannot index slice/array with type {go_type(k)}")
            if not 0 <= k < len(v):
                raise TemplateError(f"index out of range: {k}")
            v = v[k]
        elif v is None or v is MISSING:
            raise TemplateError("index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {go_type(v)}")
    return v


def slice_(v: Any, *idx: int) -> Any:
    if not isinstance(v, str | list | tuple):
        raise TemplateError(f"can't slice item of type {go_type(v)}")
    if len(idx) > 2:
        raise TemplateError("3-index slice is not supported by this renderer")
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(v)
    if not 0 <= lo <= hi <= len(v):
        raise TemplateError(f"slice index out of range: [{lo}:{hi}]")
    return v[lo:hi]


def println_(*args: Any) -> str:
    return " ".join(go_str(a, False) for a in args) + "\n"


def urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(sprint(list(args)))


def html_escape(*args: Any) -> str:
    return html.escape(sprint(list(args)), quote=True).replace("&#x27;", "&#39;")


BUILTINS: dict[str, Any] = {
    "and": "lazy",  # evaluated lazily by the executor; listed so the parser knows the name
    "or": "lazy",
    "not": not_,
    "len": length,
    "index": index,
    "slice": slice_,
    "print": lambda *a: sprint(list(a)),
    "printf": lambda fmt, *a: sprintf(fmt, list(a)),
    "println": println_,
    "eq": eq,
    "ne": ne,
    "lt": lt,
    "le": le,
    "gt": gt,
    "ge": ge,
    "html": html_escape,
    "urlquery": urlquery,
}
