"""PURE: Nomad's structured job diff (`POST /v1/job/:id/plan` with `Diff: true`) as text.

The lines follow `nomad job plan` (command/job_plan.go, `formatJobDiff`): `+` added, `-`
deleted, `+/-` edited, fields as `Name: "old" => "new"`, nested objects in braces, and each
group's planned updates in parentheses ("1 create/destroy update, 2 ignore"). Nomad computes
the diff (nomad/structs/diff.go), so what `controllerctl install --dry-run` prints is what
Nomad would change, not our guess of it; unchanged parts are left out. Policies, which are
text, are shown as a unified diff of their rules (`text_diff`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

MARK = {"Added": "+", "Deleted": "-", "Edited": "+/-"}
INDENT = "  "


def _marked(kind: str, text: str) -> str:
    mark = MARK.get(kind, "")
    return f"{mark} {text}" if mark else text


def _field(f: Mapping[str, Any]) -> str:
    kind, name = str(f.get("Type") or ""), str(f.get("Name") or "")
    old, new = f.get("Old") or "", f.get("New") or ""
    if kind == "Added":
        text = f'{name}: "{new}"'
    elif kind == "Deleted":
        text = f'{name}: "{old}"'
    else:
        text = f'{name}: "{old}" => "{new}"'
    notes = [str(a) for a in f.get("Annotations") or []]
    if notes:
        text += f" ({', '.join(notes)})"
    return _marked(kind, text)


def _body(diff: Mapping[str, Any], depth: int) -> list[str]:
    pad = INDENT * depth
    out = [pad + _field(f) for f in diff.get("Fields") or [] if f.get("Type") != "None"]
    for obj in diff.get("Objects") or []:
        if obj.get("Type") == "None":
            continue
        out.append(pad + _marked(str(obj.get("Type")), f"{obj.get('Name')} {{"))
        out.extend(_body(obj, depth + 1))
        out.append(pad + "}")
    return out


def _updates(group: Mapping[str, Any]) -> str:
    updates = group.get("Updates") or {}
    parts = [f"{count} {what}" for what, count in sorted(updates.items()) if count]
    return f" ({', '.join(parts)})" if parts else ""


def _task(task: Mapping[str, Any], depth: int) -> list[str]:
    notes = [str(a) for a in task.get("Annotations") or []]
    suffix = f" ({', '.join(notes)})" if notes else ""
    head = INDENT * depth + _marked(str(task.get("Type")), f'Task: "{task.get("Name")}"{suffix}')
    return [head, *_body(task, depth + 1)]


def diff_lines(diff: Mapping[str, Any] | None) -> list[str]:
    """The job diff as `nomad job plan` lines; [] when nothing would change."""
    if not diff or diff.get("Type") in (None, "None"):
        return []
    out = [_marked(str(diff.get("Type")), f'Job: "{diff.get("ID")}"'), *_body(diff, 0)]
    for group in diff.get("TaskGroups") or []:
        if group.get("Type") == "None" and not group.get("Updates"):
            continue
        name = f'Task Group: "{group.get("Name")}"{_updates(group)}'
        out.append(_marked(str(group.get("Type")), name))
        out.extend(_body(group, 1))
        for task in group.get("Tasks") or []:
            if task.get("Type") != "None":
                out.extend(_task(task, 1))
    return out


def text_diff(old: str, new: str) -> tuple[str, ...]:
    """A policy's change as unified-diff lines without the file headers (`-`/`+` per line),
    so a dry run shows which rules an update adds or drops, not only that it would update."""
    lines = difflib.unified_diff(old.strip().splitlines(), new.strip().splitlines(), lineterm="")
    return tuple(line for line in lines if not line.startswith(("---", "+++")))
