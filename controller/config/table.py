"""The configuration reference as data, so README's table can be generated and checked."""

from __future__ import annotations

from pydantic.fields import FieldInfo

from controller.config.groups import GROUPS
from controller.config.values import DurationMarker, env_name, format_duration
from crds_equivalent.config import MeshConfig


def _default_text(info: FieldInfo) -> str:
    value = info.default
    if value is None:
        return "(unset)"
    if any(isinstance(m, DurationMarker) for m in info.metadata):
        return format_duration(float(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(getattr(value, "value", value))


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting, in documentation order."""
    rows: list[tuple[str, str, str]] = []
    for model in GROUPS.values():
        for name, info in model.model_fields.items():
            rows.append((env_name(model, name), _default_text(info), info.description or ""))
    for name, info in MeshConfig.model_fields.items():
        rows.append((f"MESH_{name}".upper(), _default_text(info), info.description or ""))
    return rows


def settings_markdown() -> str:
    """The README's configuration table (markdown)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for var, default, text in settings_table():
        escaped = text.replace("|", "\\|")
        lines.append(f"| `{var}` | `{default}` | {escaped} |")
    return "\n".join(lines) + "\n"
