"""Job diffs for plan and versions: JobDiff -> TaskGroupDiff -> TaskDiff.

Shaped like Nomad's ``structs.JobDiff``: every diff has a Type (None, Added, Deleted,
Edited), primitive fields become FieldDiffs with string values, nested objects become
ObjectDiffs. Task groups and tasks are matched by name and always listed.
"""

from __future__ import annotations

from typing import Any

from devstack.nomad.canon import NON_SPEC

# map[string]string fields of Nomad's structs: helper/flatmap flattens them into the owner's
# primitive fields as "Meta[key]" (nomad/structs/diff.go, Job/TaskGroup/Task.Diff), so a
# meta change is a field of the job, group or task, never an object of its own.
FLAT_MAPS = ("Meta", "Env")


def _s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kind(old: Any, new: Any) -> str:
    if old is None or old == {}:
        return "Added" if new not in (None, {}) else "None"
    if new is None or new == {}:
        return "Deleted"
    return "Edited" if old != new else "None"


def _field(name: str, old: Any, new: Any) -> dict[str, Any]:
    kind = "Added" if old in (None, "") else "Deleted" if new in (None, "") else "Edited"
    return {"Type": kind, "Name": name, "Old": _s(old), "New": _s(new), "Annotations": None}


def object_parts(
    old: dict[str, Any] | None, new: dict[str, Any] | None, skip: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    old = old or {}
    new = new or {}
    fields: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key in skip:
            continue
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key in FLAT_MAPS and isinstance(a or {}, dict) and isinstance(b or {}, dict):
            fields.extend(_flat_map_fields(key, a or {}, b or {}))
        elif isinstance(a, dict) or isinstance(b, dict):
            obj = object_diff(key, a, b)
            if obj["Type"] != "None":
                objects.append(obj)
        elif isinstance(a, list) or isinstance(b, list):
            la, lb = a or [], b or []
            if all(not isinstance(x, dict | list) for x in [*la, *lb]):
                for x in la:
                    if x not in lb:
                        fields.append(_field(key, x, None))
                for x in lb:
                    if x not in la:
                        fields.append(_field(key, None, x))
            else:
                for i in range(max(len(la), len(lb))):
                    x = la[i] if i < len(la) else None
                    y = lb[i] if i < len(lb) else None
                    obj = object_diff(key, x, y)
                    if obj["Type"] != "None":
                        objects.append(obj)
        else:
            fields.append(_field(key, a, b))
    return fields, objects


def _flat_map_fields(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _field(f"{name}[{key}]", old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def object_diff(name: str, old: Any, new: Any) -> dict[str, Any]:
    if not isinstance(old, dict | type(None)) or not isinstance(new, dict | type(None)):
        old = {"": old} if old is not None else None
        new = {"": new} if new is not None else None
    fields, objects = object_parts(old, new)
    return {
        "Type": _kind(old, new),
        "Name": name,
        "Fields": fields or None,
        "Objects": objects or None,
    }


def _by_name(items: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {i["Name"]: i for i in items or []}


def job_diff(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    updates: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    fields, objects = object_parts(old, new, skip=(*NON_SPEC, "TaskGroups"))
    groups = []
    og, ng = _by_name((old or {}).get("TaskGroups")), _by_name(new.get("TaskGroups"))
    for name in sorted(set(og) | set(ng)):
        groups.append(_group_diff(name, og.get(name), ng.get(name), (updates or {}).get(name)))
    if old is None:
        kind = "Added"
    elif fields or objects or any(g["Type"] != "None" for g in groups):
        kind = "Edited"
    else:
        kind = "None"
    return {
        "Type": kind,
        "ID": new["ID"],
        "Fields": fields or None,
        "Objects": objects or None,
        "TaskGroups": groups,
    }


def _group_diff(
    name: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    updates: dict[str, int] | None,
) -> dict[str, Any]:
    fields, objects = object_parts(old, new, skip=("Tasks", "Name"))
    tasks = []
    ot, nt = _by_name((old or {}).get("Tasks")), _by_name((new or {}).get("Tasks"))
    for tname in sorted(set(ot) | set(nt)):
        a, b = ot.get(tname), nt.get(tname)
        tf, to = object_parts(a, b, skip=("Name",))
        kind = (
            "Added" if a is None else "Deleted" if b is None else ("Edited" if tf or to else "None")
        )
        tasks.append(
            {
                "Type": kind,
                "Name": tname,
                "Fields": tf or None,
                "Objects": to or None,
                "Annotations": None,
            }
        )
    if old is None:
        kind = "Added"
    elif new is None:
        kind = "Deleted"
    elif fields or objects or any(t["Type"] != "None" for t in tasks):
        kind = "Edited"
    else:
        kind = "None"
    return {
        "Type": kind,
        "Name": name,
        "Fields": fields or None,
        "Objects": objects or None,
        "Tasks": tasks,
        "Updates": _updates(updates),
    }


def _updates(ann: dict[str, int] | None) -> dict[str, int] | None:
    if not ann:
        return None
    names = {
        "Place": "create",
        "Stop": "destroy",
        "InPlaceUpdate": "in-place update",
        "DestructiveUpdate": "create/destroy update",
        "Ignore": "ignore",
        "Migrate": "migrate",
        "Canary": "canary",
    }
    out = {label: ann[key] for key, label in names.items() if ann.get(key)}
    return out or None
