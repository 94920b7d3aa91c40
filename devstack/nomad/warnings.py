"""The ``Warnings`` string of a job register reply, worded and nested as Nomad words it.

nomad/job_endpoint_hooks.go (validator jobValidate) unpacks ``job.Warnings()`` into one warning
per group; nomad/job_endpoint.go (Job.Register) merges them with helper.MergeMultierrorWarnings
(helper/warning.go: "1 warning:" / "N warnings:", then "\\n* <trimmed>" each). Inside, the
group and task warnings are go-multierror lists in its default ListFormatFunc
("1 error occurred:\\n\\t* %s\\n\\n"). The twin produces the warnings of the shapes it is asked
about — today the deprecated task-level networks (nomad/structs/structs.go, Task.Warnings) —
and "" when there is none, as Nomad's empty merge does.
"""

from __future__ import annotations

from typing import Any

TASK_NETWORKS_DEPRECATED = (
    "task network resources have been deprecated as of Nomad 0.12.0. "
    "Please configure networking via group network block."
)


def _list_format(errors: list[str]) -> str:
    """go-multierror's ListFormatFunc."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def _task_warnings(task: dict[str, Any]) -> list[str]:
    """Task.Warnings (the part the twin models)."""
    if (task.get("Resources") or {}).get("Networks"):
        return [TASK_NETWORKS_DEPRECATED]
    return []


def _group_warnings(group: dict[str, Any]) -> list[str]:
    """TaskGroup.Warnings: each task's list as ``Task "<name>" has warnings: <list>``."""
    out = []
    for task in group.get("Tasks") or []:
        errors = _task_warnings(task)
        if errors:
            out.append(f'Task "{task.get("Name", "")}" has warnings: {_list_format(errors)}')
    return out


def job_warnings(job: dict[str, Any]) -> str:
    """The register reply's ``Warnings`` for ``job`` ("" when there is nothing to say)."""
    warnings = []
    for group in job.get("TaskGroups") or []:
        errors = _group_warnings(group)
        if errors:
            warnings.append(f'Group "{group.get("Name", "")}" has warnings: {_list_format(errors)}')
    if not warnings:
        return ""
    head = "1 warning:\n" if len(warnings) == 1 else f"{len(warnings)} warnings:\n"
    return head + "".join(f"\n* {w.strip()}" for w in warnings)
