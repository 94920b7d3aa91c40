"""Value syntaxes and the env source shared by every settings group.

Booleans and durations use Go's syntax (what the HashiCorp CLIs accept), durations also plain
seconds. Variables are looked up exactly as ``<PREFIX><FIELD>`` upper-case, and an empty
variable counts as unset, as in the Go clients. ``Settings.from_env(env)`` reads a given
mapping instead of ``os.environ`` through a context variable, so tests stay hermetic.

A group is a plain pydantic model that reads its variables when built, not a pydantic-settings
``BaseSettings``: the one source it used (exact names, flags first) is a dict merge, and
pydantic-settings (with python-dotenv, 31 modules) held ~1.2 MB of ``controller run``'s
resident memory for the process's life.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from crds_equivalent.goparse import parse_go_bool, parse_go_duration


class ConfigError(ValueError):
    """A setting has an unusable value; the message names the variable, never a secret."""


# -- value syntaxes -------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[0-9]+(\.[0-9]*)?$")


class DurationMarker:
    """Marks a field as a duration (for the docs table)."""


def _to_seconds(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        return float(text) if _NUMBER.match(text) else parse_go_duration(text)
    return value


def _to_bool(value: object) -> object:
    return parse_go_bool(value.strip()) if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(_to_seconds), Field(ge=0), DurationMarker()]
GoBool = Annotated[bool, BeforeValidator(_to_bool)]


def format_duration(seconds: float) -> str:
    """Seconds as the shortest Go duration string: 600 -> 10m, 2592000 -> 720h, 0.5 -> 500ms."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds}s"
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


# -- env source -----------------------------------------------------------------------------------

_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("mesh_settings_env", default=None)


@contextlib.contextmanager
def reading(env: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENV.set(env)
    try:
        yield
    finally:
        _ENV.reset(token)


class Group(BaseModel):
    """A settings group: init kwargs (flags) first, then ``<env_prefix><FIELD>`` variables."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
    env_prefix: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_from_env(type(self)), **values})


def _from_env(cls: type[Group]) -> dict[str, str]:
    """The group's variables that are set (an empty one counts as unset, as in the Go clients),
    by field name, from the mapping ``reading`` gave or else ``os.environ``."""
    env = _ENV.get()
    source = os.environ if env is None else env
    found = ((name, source.get(env_name(cls, name))) for name in cls.model_fields)
    return {name: value for name, value in found if value}


def env_name(cls: type[BaseModel], field_name: str) -> str:
    prefix = cls.env_prefix if issubclass(cls, Group) else ""
    return f"{prefix}{field_name}".upper()


def describe(exc: ValidationError, var_of: Callable[[str], str], secrets: set[str]) -> str:
    """A validation error in terms of variable names; values of secret fields are never shown."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        if field and field not in secrets and "input" in err:
            parts.append(f"{var_of(field)}={err['input']!r}: {msg}")
        elif field:
            parts.append(f"{var_of(field)}: {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts)
