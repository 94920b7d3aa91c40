"""Go's value semantics that templates expose: truthiness, fmt printing, and printf verbs.

A template prints `{{ .Port }}` with fmt.Sprint, lists as `[a b]`, a missing map key as
`<no value>`. Rendering configuration files byte-for-byte like Nomad does needs these rules.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields, is_dataclass
from decimal import Decimal
from typing import Any

from devstack.template.errors import TemplateError


class _Missing:
    """A map lookup that found nothing (Go's invalid reflect.Value)."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class GoStruct:
    """Marker base for values that behave as Go structs (fixed fields, always truthy)."""

    go_type = "struct"

    def go_fields(self) -> list[tuple[str, Any]]:
        if is_dataclass(self):
            return [(f.name, getattr(self, f.name)) for f in fields(self)]
        return []


def truth(v: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings/collections are false."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, GoStruct):
        return True
    if isinstance(v, bool | int | float | str | list | tuple | dict):
        return bool(v)
    return True


def go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64) as fmt's %v prints it."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign, digits, exponent = Decimal(repr(f)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    nd = len(ds)
    dp = nd + int(exponent)
    exp = dp - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= max(6, 0):
        mant = ds[0] + ("." + ds[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= nd:
        return f"{neg}{ds}{'0' * (dp - nd)}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def go_str(v: Any, top: bool = True) -> str:
    """fmt.Sprint of one value."""
    stringer = getattr(v, "go_string", None)
    if stringer is not None:  # Go's fmt.Stringer
        return str(stringer())
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<no value>" if top else "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x, False) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: sort_key(kv[0]))
        return "map[" + " ".join(f"{go_str(k, False)}:{go_str(x, False)}" for k, x in items) + "]"
    if isinstance(v, GoStruct):
        return "{" + " ".join(go_str(x, False) for _, x in v.go_fields()) + "}"
    return str(v)


def sort_key(k: Any) -> tuple[int, Any]:
    return (0, k) if isinstance(k, int | float) and not isinstance(k, bool) else (1, str(k))


def go_type(v: Any) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    named = getattr(type(v), "go_type", None)
    if isinstance(named, str):
        return named
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return type(v).__name__


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a, top=False) if a is not MISSING else "<no value>")
    return "".join(out)


def go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\\u007f", "\\x7f")


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def _bad(verb: str, v: Any) -> str:
    return f"%!{verb}({go_type(v)}={go_str(v, False)})"


def _one(flags: str, width: str, prec: str | None, verb: str, v: Any) -> str:
    spec = "%" + flags + width + (f".{prec}" if prec is not None else "")
    if verb in "vs":
        if verb == "s" and isinstance(v, bool | int | float):
            return _bad(verb, v)
        return (spec + "s") % (v if isinstance(v, str) else go_str(v, False))
    if verb == "q":
        if isinstance(v, int) and not isinstance(v, bool):
            return (spec + "s") % ("'" + chr(v) + "'")
        return (spec + "s") % go_quote(str(v)) if isinstance(v, str) else _bad(verb, v)
    if verb == "t":
        return (spec + "s") % go_str(v) if isinstance(v, bool) else _bad(verb, v)
    if verb in "dxXobc":
        if isinstance(v, str) and verb in "xX":
            hexed = v.encode().hex()
            return (spec + "s") % (hexed if verb == "x" else hexed.upper())
        if not isinstance(v, int) or isinstance(v, bool):
            return _bad(verb, v)
        if verb == "b":
            return (spec + "s") % format(v, "b")
        if verb == "c":
            return (spec + "s") % chr(v)
        return (spec + verb) % v
    if verb in "feEgG":
        if isinstance(v, bool) or not isinstance(v, int | float):
            return _bad(verb, v)
        if verb in "gG" and prec is None:
            return (spec + "s") % go_float(float(v))
        text = (spec + verb) % float(v)
        return re.sub(r"e([+-])(\d)$", r"e\g<1>0\2", text)
    raise TemplateError(f"template: printf: verb %{verb} is not supported by this renderer")


def sprintf(fmt: str, args: list[Any]) -> str:
    out: list[str] = []
    pos = 0
    ai = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if "*" in (width, prec):
            raise TemplateError("template: printf: '*' widths are not supported by this renderer")
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_one(flags, width, prec, verb, args[ai]))
        ai += 1
    out.append(fmt[pos:])
    if ai < len(args):
        extra = ", ".join(f"{go_type(a)}={go_str(a, False)}" for a in args[ai:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
