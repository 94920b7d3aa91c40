"""Give a decoded struct its server shape: every key, in Go order, zeros filled.

Nomad's server structs have no json tags, so every field is on the wire (nil pointers,
slices and maps as ``null``); NetworkResource and Port omit every zero field.
"""

from __future__ import annotations

from typing import Any

from devstack.nomad.codec import omitempty
from devstack.nomad.schema import OMITEMPTY, STRUCTS

_ZERO: dict[str, Any] = {"s": "", "i": 0, "b": False, "d": 0, "f": 0.0}


def shape(struct: str, value: dict[str, Any] | None) -> dict[str, Any]:
    src = value or {}
    out: dict[str, Any] = {}
    for name, kind in STRUCTS[struct].items():
        out[name] = _shape_kind(kind, src.get(name))
    if struct in OMITEMPTY:
        return omitempty(out)
    return out


def _shape_kind(kind: str, item: Any) -> Any:
    if item is None:
        if kind in _ZERO:
            return _ZERO[kind]
        if kind[0] == "!":
            return shape(kind[1:], {})
        return None
    if kind[0] in "@!":
        return shape(kind[1:], item)
    if kind[0] == "[":
        return [shape(kind[1:], x) if x is not None else None for x in item]
    if kind[0] == "{":
        return {k: shape(kind[1:], v) for k, v in item.items()}
    return item
