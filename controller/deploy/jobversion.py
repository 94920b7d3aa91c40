"""PURE: which controller version a system job runs, and the same job at another version.

The version lives in two places of the job (both from the HCL's `var.version`): `meta.version`
and the tag of the docker task's image. An upgrade changes both, so `nomad job plan` and
`controllerctl install --dry-run` show the new version and Nomad replaces every allocation (a
job meta change is destructive: it reaches each task's environment as NOMAD_META_version).
A raw_exec task has no image; there only the meta changes, and the new binary must be on the
nodes already.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

META_KEY = "version"


def job_version(job: Mapping[str, Any]) -> str:
    """The job's `meta.version`, "" when it has none."""
    return str((job.get("Meta") or {}).get(META_KEY) or "")


def images(job: Mapping[str, Any]) -> list[str]:
    """The image of every docker task, in group and task order."""
    return [
        str((task.get("Config") or {}).get("image"))
        for group in job.get("TaskGroups") or []
        for task in group.get("Tasks") or []
        if task.get("Driver") == "docker" and (task.get("Config") or {}).get("image")
    ]


def untagged(image: str) -> str:
    """``registry:5000/nomad-tls-mesh:0.1.0`` -> ``registry:5000/nomad-tls-mesh`` (a colon
    after the last slash starts the tag; a digest is dropped too)."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def with_version(
    job: Mapping[str, Any], version: str | None = None, image: str | None = None
) -> dict[str, Any]:
    """A copy of ``job`` at ``version`` (meta.version and each docker image's tag), and with
    ``image`` (a full reference) on every docker task when given. None leaves a part as is."""
    out = copy.deepcopy(dict(job))
    if version:
        out["Meta"] = {**(out.get("Meta") or {}), META_KEY: version}
    for group in out.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            config = task.get("Config") or {}
            if task.get("Driver") != "docker" or not config.get("image"):
                continue
            if image:
                config["image"] = image
            elif version:
                config["image"] = f"{untagged(str(config['image']))}:{version}"
    return out
