"""Settings, read the way HashiCorp's own clients read them, so operators reuse what they know.

``NOMAD_*``, ``VAULT_*`` and ``CONSUL_*`` mean here what they mean to the ``nomad``, ``vault``
and ``consul`` CLIs (including Consul's inverted ``CONSUL_HTTP_SSL_VERIFY``); booleans and
durations use Go's syntax. ``MESH_*`` are our own knobs, and the cluster-wide ``MeshConfig``
fields map to ``MESH_<FIELD>``. Precedence: flags > env > defaults.

    settings = Settings.from_env(nomad_addr=flag_value, mesh_workers=8)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from controller.config.groups import (
    GROUPS,
    ConsulSettings,
    ControllerSettings,
    NomadSettings,
    VaultSettings,
)
from controller.config.mesh import load_mesh_config, load_model_from_env
from controller.config.table import settings_markdown, settings_table
from controller.config.values import (
    ConfigError,
    Duration,
    GoBool,
    describe,
    env_name,
    format_duration,
    reading,
)
from crds_equivalent.config import MeshConfig

__all__ = [
    "ConfigError",
    "ConsulSettings",
    "ControllerSettings",
    "Duration",
    "GoBool",
    "NomadSettings",
    "Settings",
    "VaultSettings",
    "format_duration",
    "load_mesh_config",
    "load_model_from_env",
    "settings_markdown",
    "settings_table",
]


class Settings(BaseModel):
    """All settings of one controller process."""

    model_config = ConfigDict(frozen=True)

    nomad: NomadSettings
    vault: VaultSettings
    consul: ConsulSettings
    controller: ControllerSettings
    mesh: MeshConfig

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: object) -> Settings:
        """Read ``env`` (default: os.environ), then apply flags.

        A flag is named like its variable, lower-case (``nomad_addr=...``, ``mesh_workers=8``,
        ``mesh_sidecar_driver="raw_exec"``); ``None`` means "flag not given".
        """
        per_group: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
        mesh_flags: dict[str, object] = {}
        unknown: list[str] = []
        for flag, value in flags.items():
            if value is None:
                continue
            target = _flag_target(flag.upper())
            if target is None:
                unknown.append(flag)
            elif target[0] == "mesh":
                mesh_flags[target[1]] = value
            else:
                per_group[target[0]][target[1]] = value
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        built: dict[str, object] = {}
        problems: list[str] = []
        with reading(env):
            for group, model in GROUPS.items():
                try:
                    built[group] = model(**per_group[group])
                except ValidationError as exc:
                    secrets = {n for n, f in model.model_fields.items() if f.exclude}
                    problems.append(describe(exc, partial(env_name, model), secrets))
        try:
            built["mesh"] = load_mesh_config(env, mesh_flags)
        except ConfigError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError("; ".join(problems))
        return cls.model_validate(built)


def _flag_target(var: str) -> tuple[str, str] | None:
    for group, model in GROUPS.items():
        for name in model.model_fields:
            if env_name(model, name) == var:
                return group, name
    for name in MeshConfig.model_fields:
        if f"MESH_{name}".upper() == var:
            return "mesh", name
    return None
