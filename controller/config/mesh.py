"""MeshConfig (the cluster-wide mesh defaults) from ``MESH_<FIELD>`` variables and flags.

Built generically from the model's fields, so a field added to ``MeshConfig`` is configurable
(and documented by ``settings_table``) without touching this module.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping
from typing import TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from controller.config.values import ConfigError, describe
from crds_equivalent.config import MeshConfig
from crds_equivalent.goparse import parse_go_bool

M = TypeVar("M", bound=BaseModel)


def _env_value(info: FieldInfo, raw: str) -> object:
    """Turn an env string into what the field's validator expects."""
    ann = info.annotation
    if get_origin(ann) in (Union, types.UnionType):
        ann = next((a for a in get_args(ann) if a is not type(None)), ann)
    if ann is bool:
        return parse_go_bool(raw.strip())
    origin = get_origin(ann) or ann
    if origin in (list, tuple, set, frozenset, dict) or (
        isinstance(origin, type) and issubclass(origin, BaseModel)
    ):
        return json.loads(raw)
    return raw


def load_model_from_env(
    model: type[M],
    prefix: str,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> M:
    """Build ``model`` from ``<prefix><FIELD>`` variables; ``overrides`` (by field name) win."""
    source = os.environ if env is None else env
    data: dict[str, object] = {}
    errors: list[str] = []
    for name, info in model.model_fields.items():
        var = f"{prefix}{name}".upper()
        raw = source.get(var)
        if raw is None or raw == "":
            continue
        try:
            data[name] = _env_value(info, raw)
        except ValueError as exc:
            errors.append(f"{var}: {exc}")
    for name, value in (overrides or {}).items():
        if name not in model.model_fields:
            errors.append(f"unknown setting {name!r} for {model.__name__}")
        elif value is not None:
            data[name] = value
    if errors:
        raise ConfigError("; ".join(errors))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, lambda f: f"{prefix}{f}".upper(), set())) from None


def load_mesh_config(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> MeshConfig:
    """The cluster-wide MeshConfig: overrides (flags) > ``MESH_<FIELD>`` env > model defaults."""
    return load_model_from_env(MeshConfig, "MESH_", env, overrides)
