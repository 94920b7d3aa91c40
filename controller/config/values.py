"""Value syntaxes and the env source shared by every settings group.

Booleans and durations use Go's syntax (what the HashiCorp CLIs accept), durations also plain
seconds. Variables are looked up exactly as ``<PREFIX><FIELD>`` upper-case, and an empty
variable counts as unset, as in the Go clients. ``Settings.from_env(env)`` reads a given
mapping instead of ``os.environ`` through a context variable, so tests stay hermetic.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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


class _ExactEnv(PydanticBaseSettingsSource):
    """``<PREFIX><FIELD>`` upper-case, exactly as the Go clients spell them; "" means unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        env = _ENV.get()
        source = os.environ if env is None else env
        key = env_name(self.settings_cls, field_name)
        return source.get(key), key, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(info, name)
            if value is not None and value != "":
                out[name] = value
        return out


class Group(BaseSettings):
    """A settings group: init kwargs (flags) first, then the exact-name env source."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _ExactEnv(settings_cls))


def env_name(cls: type[BaseModel], field_name: str) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
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
