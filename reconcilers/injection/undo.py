"""PURE: the undo record, and ``uninject``: the user's job back, exactly, from our markers.

The injection (``inject``) writes the record; this module owns its shape, its parsing and the
restore, so the one format has one home apart from the compiler that writes it (``uninject``
is called far more often than ``inject``: by the planner, the instance matching and every
``controllerctl`` command, on jobs they did not inject). Every group field the injection
replaces is recorded verbatim (``mesh.tls.undo``: compact JSON, nulls and absent keys
included).

Undo record (version 1)::

    {"v": 1,
     "group": {"<key>": <original value>, ...},      # Networks, Services, (Tasks)
     "absent": ["<key>", ...],                       # keys the group did not have
     "meta": "object" | "null" | "absent",           # what the group's Meta was
     "tasks": [[<index>, {"Services": <original>}, ["<absent key>", ...]], ...],
     "sidecar_at": <index of mesh-tls-proxy in Tasks> | null,
     "constraints": [<constraint>, ...] | null | "absent"}  # the group's, before the sidecar

Constraints are dropped, not restored: see ``implied``.

Group Meta is not restored wholesale: it is the user's interface (``mesh.tls`` lives there),
so an edit of it on the injected job must count. uninject removes only our two keys and puts
back a ``null``/absent Meta that we had to create.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from typing import Any

from crds_equivalent import keys
from reconcilers.injection import jobview
from reconcilers.injection.implied import drop_implied

UNDO_VERSION = 1


class UndoError(ValueError):
    """A group carries our markers but its undo record cannot be applied."""


class UndoRecord:
    """The undo record of one group, filled in as the injection replaces its fields.

    It keeps the replaced values themselves, not copies: the injection replaces a field with a
    new value and never changes the old one (``rewrite`` copies on write), and the record is
    serialised (:meth:`dumps`) before the injected group is handed out.
    """

    def __init__(self) -> None:
        self.group: dict[str, Any] = {}
        self.absent: list[str] = []
        self.tasks: list[list[Any]] = []
        self.sidecar_at: int | None = None
        self.meta = "absent"
        self.constraints: Any = "absent"

    def keep(self, group: Mapping[str, Any], key: str) -> None:
        if key in group:
            self.group[key] = group[key]
        else:
            self.absent.append(key)

    def keep_task(self, index: int, task: Mapping[str, Any], key: str) -> None:
        if key in task:
            self.tasks.append([index, {key: task[key]}, []])
        else:
            self.tasks.append([index, {}, [key]])

    def dumps(self) -> str:
        record = {
            "v": UNDO_VERSION,
            "group": self.group,
            "absent": self.absent,
            "tasks": self.tasks,
            "sidecar_at": self.sidecar_at,
            "meta": self.meta,
            "constraints": self.constraints,
        }
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def is_marked(group: Mapping[str, Any]) -> bool:
    """The group carries any marker of ours (hash, undo record or managed sidecar)."""
    meta = jobview.group_meta(group)
    if keys.INJECTED_GROUP_META in meta or keys.UNDO_GROUP_META in meta:
        return True
    return any(jobview.is_managed_sidecar(t) for t in jobview.tasks(group))


def uninject(job: Mapping[str, Any]) -> dict[str, Any]:
    """The user's job: every marked group restored from its undo record; raises UndoError.

    Copy on write: the job, its group list and, in each marked group, the containers the undo
    changes (the group, its task list and tasks, Meta, Constraints) are new; everything else
    is shared with ``job``. Every reconcile of every reconciler un-injects its job, and a deep
    copy of the whole job was most of the controller's CPU per job. Callers treat the result
    as read-only below those levels (``inject`` copies what it changes)."""
    out = dict(job)
    groups = out.get("TaskGroups")
    if isinstance(groups, list):
        out["TaskGroups"] = [
            _uninjected_copy(g) if isinstance(g, dict) and is_marked(g) else g for g in groups
        ]
    return out


def _uninjected_copy(group: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``group`` deep enough for ``_uninject_group`` to change, then restored."""
    out = dict(group)
    tasks = out.get("Tasks")
    if isinstance(tasks, list):
        out["Tasks"] = [dict(t) if isinstance(t, dict) else t for t in tasks]
    for key in ("Meta", "Constraints"):
        value = out.get(key)
        if isinstance(value, dict):
            out[key] = dict(value)
        elif isinstance(value, list):
            out[key] = list(value)
    _uninject_group(out)
    return out


def _parse_undo(group: Mapping[str, Any]) -> dict[str, Any]:
    name = jobview.group_name(group)
    raw = jobview.group_meta(group).get(keys.UNDO_GROUP_META)
    if not isinstance(raw, str):
        raise UndoError(f'group "{name}": marked as injected but has no undo record')
    try:
        record: object = json.loads(raw)
    except ValueError:
        raise UndoError(f'group "{name}": undo record is not JSON') from None
    if not isinstance(record, dict):
        raise UndoError(f'group "{name}": undo record has an unknown shape')
    ok = (
        record.get("v") == UNDO_VERSION
        and isinstance(record.get("group"), dict)
        and isinstance(record.get("absent"), list)
        and isinstance(record.get("tasks"), list)
        and (record.get("sidecar_at") is None or isinstance(record.get("sidecar_at"), int))
        and record.get("meta") in ("object", "null", "absent")
        and (
            "constraints" not in record
            or record["constraints"] in (None, "absent")
            or isinstance(record["constraints"], list)
        )
    )
    if not ok:
        raise UndoError(f'group "{name}": undo record has an unknown shape')
    return record


def _restore(target: MutableMapping[str, Any], saved: Mapping[str, Any], absent: list[Any]) -> None:
    for key, value in saved.items():
        target[key] = value
    for key in absent:
        if isinstance(key, str):
            target.pop(key, None)


def _uninject_group(group: dict[str, Any]) -> None:
    record = _parse_undo(group)
    name = jobview.group_name(group)
    tasks = group.get("Tasks")
    if isinstance(tasks, list):
        at = record["sidecar_at"]
        # Where the record says the sidecar is, its name is enough: the record is our own
        # evidence, and a sidecar whose Meta someone mangled must still go with the rest.
        if isinstance(at, int) and 0 <= at < len(tasks) and _named_sidecar(tasks[at]):
            del tasks[at]
        else:
            group["Tasks"] = tasks = [t for t in tasks if not _is_sidecar(t)]
        for entry in record["tasks"]:
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], int)):
                raise UndoError(f'group "{name}": undo record has an unknown task entry')
            index, saved, absent = entry
            if not (0 <= index < len(tasks) and isinstance(tasks[index], dict)):
                raise UndoError(f'group "{name}": undo record names a task that is gone')
            if isinstance(saved, dict) and isinstance(absent, list):
                _restore(tasks[index], saved, absent)
    _restore(group, record["group"], record["absent"])
    _restore_meta(group, record["meta"])
    if "constraints" in record:
        drop_implied(group, record["constraints"])


def _restore_meta(group: dict[str, Any], kind: str) -> None:
    meta = group.get("Meta")
    if not isinstance(meta, dict):
        return
    for key in keys.OWNED_GROUP_META:
        meta.pop(key, None)
    if meta or kind == "object":
        return
    if kind == "null":
        group["Meta"] = None
    else:
        del group["Meta"]


def _is_sidecar(task: object) -> bool:
    return isinstance(task, Mapping) and jobview.is_managed_sidecar(task)


def _named_sidecar(task: object) -> bool:
    return isinstance(task, Mapping) and jobview.task_name(task) == keys.SIDECAR_TASK
