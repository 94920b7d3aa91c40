"""The values `nomadVar` and `nomadVarList` hand to a template, with consul-template's methods.

consul-template wraps a Variable so that a template starts at its items: `nomadVar` returns a
map of key -> item which also answers `Keys`, `Values`, `Tuples`, `Metadata`, `Parent` and
`ItemsMap` (a method wins over an item of the same name, as in Go's text/template). An item
prints as its value, metadata as its path, a time as Go's `time.Time` prints. `go_methods`
names what the executor may call as a field; `go_string` is Go's Stringer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar

from devstack.template.gofmt import GoStruct

NS = 1_000_000_000


def go_time_string(ns: int, utc: bool = False) -> str:
    """time.Unix(0, ns).String(): `2006-01-02 15:04:05.999999999 -0700 MST`, local zone."""
    secs, frac = divmod(ns, NS)
    when = dt.datetime.fromtimestamp(secs, dt.UTC)
    when = when if utc else when.astimezone()
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    offset = when.strftime("%z")
    zone = "UTC" if utc else (when.tzname() or offset)
    return f"{text} {offset} {zone}"


@dataclass(frozen=True)
class GoTime(GoStruct):
    """The `time.Time` of a nanoTime's `Time` method (the few methods templates use)."""

    ns: int
    utc: bool = False
    go_type = "time.Time"
    go_methods: ClassVar[frozenset[str]] = frozenset({"Unix", "UnixNano", "UTC", "String"})

    def Unix(self) -> int:  # Go's method names
        return self.ns // NS

    def UnixNano(self) -> int:
        return self.ns

    def UTC(self) -> GoTime:
        return GoTime(self.ns, utc=True)

    def String(self) -> str:
        return go_time_string(self.ns, self.utc)

    def go_string(self) -> str:
        return self.String()


class NanoTime(int):
    """Unix nanoseconds, as Nomad stores CreateTime/ModifyTime; prints as a date."""

    go_type = "dependency.nanoTime"
    go_methods: ClassVar[frozenset[str]] = frozenset({"String", "Time"})

    def String(self) -> str:
        return go_time_string(int(self))

    def Time(self) -> GoTime:
        return GoTime(int(self))

    def go_string(self) -> str:
        return self.String()


@dataclass
class NomadVarMeta(GoStruct):
    Namespace: str = ""
    Path: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0
    CreateTime: NanoTime = field(default_factory=lambda: NanoTime(0))
    ModifyTime: NanoTime = field(default_factory=lambda: NanoTime(0))
    go_type = "*dependency.NomadVarMeta"
    go_methods: ClassVar[frozenset[str]] = frozenset({"String"})

    def String(self) -> str:
        return self.Path

    def go_string(self) -> str:
        return self.Path


@dataclass
class Tuple(GoStruct):
    K: str
    V: str
    go_type = "struct { K string; V string }"


@dataclass(eq=False)
class NomadVarItem(GoStruct):
    Key: str
    Value: str
    go_type = "dependency.NomadVarItem"
    go_methods: ClassVar[frozenset[str]] = frozenset({"String", "Metadata", "Parent"})

    def __post_init__(self) -> None:
        self._parent: NomadVariable | None = None

    def String(self) -> str:
        return self.Value

    def Metadata(self) -> NomadVarMeta | None:
        return self._parent.Metadata() if self._parent else None

    def Parent(self) -> NomadVariable | None:
        return self._parent

    def go_string(self) -> str:
        return self.Value

    def go_json(self) -> Any:
        return self.Value


class NomadVarItems(dict[str, NomadVarItem]):
    go_type = "dependency.NomadVarItems"
    go_methods: ClassVar[frozenset[str]] = frozenset(
        {"Keys", "Values", "Tuples", "Metadata", "Parent", "ItemsMap"}
    )

    def Keys(self) -> list[str]:
        return sorted(self)

    def Values(self) -> list[str]:
        return [self[k].Value for k in sorted(self)]

    def Tuples(self) -> list[Tuple]:
        return [Tuple(k, self[k].Value) for k in sorted(self)]

    def Metadata(self) -> NomadVarMeta | None:
        parent = self.Parent()
        return parent.Metadata() if parent else None

    def Parent(self) -> NomadVariable | None:
        return next((item.Parent() for item in self.values()), None)

    def ItemsMap(self) -> dict[str, str] | None:
        return {k: v.Value for k, v in self.items()} or None


@dataclass(eq=False)
class NomadVariable(GoStruct):
    Namespace: str
    Path: str
    CreateIndex: int
    ModifyIndex: int
    CreateTime: NanoTime
    ModifyTime: NanoTime
    Items: NomadVarItems
    go_type = "*dependency.NomadVariable"
    go_methods: ClassVar[frozenset[str]] = frozenset({"Metadata"})

    def Metadata(self) -> NomadVarMeta:
        return NomadVarMeta(
            self.Namespace,
            self.Path,
            self.CreateIndex,
            self.ModifyIndex,
            self.CreateTime,
            self.ModifyTime,
        )


def meta_of(raw: dict[str, Any]) -> NomadVarMeta:
    """A NomadVarMeta from the API's VariableMetadata JSON."""
    return NomadVarMeta(
        Namespace=str(raw.get("Namespace") or ""),
        Path=str(raw.get("Path") or ""),
        CreateIndex=int(raw.get("CreateIndex") or 0),
        ModifyIndex=int(raw.get("ModifyIndex") or 0),
        CreateTime=NanoTime(int(raw.get("CreateTime") or 0)),
        ModifyTime=NanoTime(int(raw.get("ModifyTime") or 0)),
    )


def items_of(raw: dict[str, Any]) -> NomadVarItems:
    """What nomadVar returns for the API's Variable JSON: the items, each knowing its parent."""
    meta = meta_of(raw)
    items = NomadVarItems()
    variable = NomadVariable(
        meta.Namespace,
        meta.Path,
        meta.CreateIndex,
        meta.ModifyIndex,
        meta.CreateTime,
        meta.ModifyTime,
        items,
    )
    for key, value in (raw.get("Items") or {}).items():
        item = NomadVarItem(str(key), str(value))
        item._parent = variable
        items[str(key)] = item
    return items
