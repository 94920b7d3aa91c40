"""PURE: inject(job, specs, config) -> job ; uninject(job) -> job ; spec_hash.

The job is the user's; we own only what we add. Every group field the injection replaces is
first recorded, verbatim, in the group's undo record (``mesh.tls.undo``: compact JSON, nulls
and absent keys included), so ``uninject`` gives the user's group back exactly:
``uninject(inject(j)) == j`` and ``inject(inject(j)) == inject(j)`` for every job. Unmeshed
groups and every field we do not own pass through untouched; the input is never mutated.

Undo record (version 1)::

    {"v": 1,
     "group": {"<key>": <original value>, ...},      # Networks, Services, (Tasks)
     "absent": ["<key>", ...],                       # keys the group did not have
     "meta": "object" | "null" | "absent",           # what the group's Meta was
     "tasks": [[<index>, {"Services": <original>}, ["<absent key>", ...]], ...],
     "sidecar_at": <index of mesh-tls-proxy in Tasks> | null,
     "constraints": [<constraint>, ...] | null | "absent"}  # the group's, before the sidecar

Constraints are the one group field Nomad's server writes *because of* the sidecar: on register
``nomad/job_endpoint_hooks.go`` ``jobImpliedConstraints.Mutate`` adds ``${attr.vault.version}
semver >= 0.6.1`` (the sidecar's Vault block, ``vaultConstraintFn``) and ``${attr.os.signals}
set_contains ...`` (its KillSignal, ``Job.RequiredSignals``/``getSignalConstraint``), and
``nomad/job_endpoint_hook_implicit_identities.go`` appends ``${attr.nomad.version} semver >=
1.7.0-a`` — without any dedupe — whenever a task has an identity (the sidecar's Vault block
gets ``vault_default`` on workload-identity clusters). They are not restored verbatim (a
constraint the user adds to the injected job must stay), so ``uninject`` drops only
constraints *of those shapes* beyond what the group had before injection, counted as a
multiset: the user's constraints, and the implied ones the user's own tasks caused before we
came, stay; the ones we caused go. Nomad re-adds on the next register whatever the job still
implies, so dropping an implied constraint the user's job also implies costs nothing, and
repeated writes cannot grow the list. A record written before this field existed drops
nothing (the controller cannot tell then).

Group Meta is not restored wholesale: it is the user's interface (``mesh.tls`` lives there),
so an edit of it on the injected job must count. uninject removes only our two keys and puts
back a ``null``/absent Meta that we had to create.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Mapping, MutableMapping
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec, Mode, TlsProtocol
from reconcilers.injection import fronting, jobview, nginx, rewrite, sidecar
from reconcilers.injection.hashing import INJECTOR_VERSION as INJECTOR_VERSION
from reconcilers.injection.hashing import effective_ttl, rotation_nonce
from reconcilers.injection.hashing import spec_hash as spec_hash

UNDO_VERSION = 1
_ABSENT = object()


class CannotInject(ValueError):
    """The group cannot be injected as asked (the planner reports these as Invalid)."""


class UndoError(ValueError):
    """A group carries our markers but its undo record cannot be applied."""


def inject(
    job: Mapping[str, Any], specs: Mapping[str, MeshSpec], config: MeshConfig
) -> dict[str, Any]:
    """The job with every enabled group meshed; other groups exactly as the user wrote them."""
    user = uninject(job)
    out = copy.deepcopy(user)
    for group in jobview.as_list(out.get("TaskGroups")):
        if not isinstance(group, dict):
            continue
        spec = specs.get(jobview.group_name(group))
        if spec is not None and spec.enabled:
            _inject_group(user, group, spec, config)
    return out


class _Undo:
    def __init__(self) -> None:
        self.group: dict[str, Any] = {}
        self.absent: list[str] = []
        self.tasks: list[list[Any]] = []
        self.sidecar_at: int | None = None
        self.meta = "absent"
        self.constraints: Any = "absent"

    def keep(self, group: Mapping[str, Any], key: str) -> None:
        if key in group:
            self.group[key] = copy.deepcopy(group[key])
        else:
            self.absent.append(key)

    def keep_task(self, index: int, task: Mapping[str, Any], key: str) -> None:
        if key in task:
            self.tasks.append([index, {key: copy.deepcopy(task[key])}, []])
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


def _inject_group(
    user: Mapping[str, Any], group: dict[str, Any], spec: MeshSpec, config: MeshConfig
) -> None:
    try:
        inputs = fronting.group_inputs(user, group, spec)
    except jobview.UnresolvedName as err:
        raise CannotInject(f'group "{spec.group}": {err}') from None
    if not inputs.ports:
        raise CannotInject(f'group "{spec.group}": no port to front')
    marker = spec_hash(spec, config, user, group)
    side = _sidecar_spec(user, group, spec, config, inputs)
    tls_labels = {p.label: keys.tls_port_label(p.label) for p in inputs.ports}
    permissive = spec.mode is Mode.PERMISSIVE
    undo = _Undo()
    if "Constraints" in group:
        undo.constraints = copy.deepcopy(group["Constraints"])

    undo.keep(group, "Networks")
    networks = rewrite.add_ports(jobview.as_list(group.get("Networks")), inputs.ports)
    rewrite.set_ordered(group, "Networks", networks, rewrite.GROUP_ORDER)

    group_names = {s.view.index: s.name for s in inputs.services if s.view.task is None}
    if group_names:
        undo.keep(group, "Services")
        group["Services"] = rewrite.rewrite_services(
            jobview.as_list(group.get("Services")), group_names, tls_labels, permissive, config
        )
    for index, task in enumerate(jobview.as_list(group.get("Tasks"))):
        if not isinstance(task, dict):
            continue
        name = jobview.task_name(task)
        names = {s.view.index: s.name for s in inputs.services if s.view.task == name}
        if names:
            undo.keep_task(index, task, "Services")
            task["Services"] = rewrite.rewrite_services(
                jobview.as_list(task.get("Services")), names, tls_labels, permissive, config
            )

    task = sidecar.sidecar_task(side, config)
    tasks = group.get("Tasks")
    if isinstance(tasks, list):
        undo.sidecar_at = len(tasks)
        tasks.append(task)
    else:
        undo.keep(group, "Tasks")
        rewrite.set_ordered(group, "Tasks", [task], rewrite.GROUP_ORDER)

    if isinstance(group.get("Meta"), Mapping):
        undo.meta = "object"
    elif "Meta" in group:
        undo.meta = "null"
        if group["Meta"] is not None:  # not a JSON object: Nomad would reject it; keep it
            undo.keep(group, "Meta")
    meta = dict(jobview.group_meta(group))
    meta[keys.INJECTED_GROUP_META] = marker
    meta[keys.UNDO_GROUP_META] = undo.dumps()
    rewrite.set_ordered(group, "Meta", meta, rewrite.GROUP_ORDER)


def _sidecar_spec(
    job: Mapping[str, Any],
    group: Mapping[str, Any],
    spec: MeshSpec,
    config: MeshConfig,
    inputs: fronting.GroupInputs,
) -> sidecar.SidecarSpec:
    names = fronting.service_names(job, group, inputs)
    cn = f"{names[0]}.{config.domain}"
    alt = [f"{n}.{config.domain}" for n in names[1:]]
    alt += [f"{n}.service.${{NOMAD_DC}}.{config.datacenter_domain}" for n in names]
    alt += list(spec.sans)
    # One IP SAN per host network the TLS ports live on ("" is Nomad's "default").
    per_network: dict[str, str] = {}
    for port in inputs.ports:
        per_network.setdefault(port.host_network or "default", keys.tls_port_label(port.label))
    routes = fronting.health_routes(inputs, spec)
    listeners = tuple(
        nginx.Listener(
            keys.tls_port_label(p.label),
            p.label,
            p.namespaced and p.task is None,
            p.task,
            tuple((r.method, r.path) for r in routes if r.label == p.label),
        )
        for p in inputs.ports
    )
    for listener in listeners:
        try:
            nginx.check_locations("", listener.health_checks)
        except nginx.UnsafeCheck as err:
            raise CannotInject(f'group "{spec.group}": {err}') from None
    return sidecar.SidecarSpec(
        listeners=listeners,
        tcp=spec.protocol is TlsProtocol.TCP,
        mtls=spec.mtls,
        common_name=cn,
        alt_names=sidecar.dedupe(alt),
        ip_labels=tuple(per_network.values()),
        ttl_seconds=effective_ttl(spec, job),
        rotation=rotation_nonce(group),
    )


def is_marked(group: Mapping[str, Any]) -> bool:
    """The group carries any marker of ours (hash, undo record or managed sidecar)."""
    meta = jobview.group_meta(group)
    if keys.INJECTED_GROUP_META in meta or keys.UNDO_GROUP_META in meta:
        return True
    return any(jobview.is_managed_sidecar(t) for t in jobview.tasks(group))


def uninject(job: Mapping[str, Any]) -> dict[str, Any]:
    """The user's job: every marked group restored from its undo record; raises UndoError."""
    out = copy.deepcopy(dict(job))
    for group in jobview.as_list(out.get("TaskGroups")):
        if isinstance(group, dict) and is_marked(group):
            _uninject_group(group)
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
        if isinstance(at, int) and 0 <= at < len(tasks) and _is_sidecar(tasks[at]):
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
        _drop_implied(group, record["constraints"])


def is_sidecar_implied(constraint: object) -> bool:
    """A constraint exactly as Nomad's server adds it because of what the sidecar carries.

    ``vaultConstraintFn`` (``${attr.vault.version} semver >= 0.6.1``, or
    ``${attr.vault.<cluster>.version} semver >= 1.11.0`` for a non-default cluster),
    ``getSignalConstraint`` (``${attr.os.signals} set_contains`` the sorted union of the
    group's signals, which with the sidecar always holds its SIGHUP and SIGQUIT) and
    ``implicitIdentityClientVersionConstraint`` (``${attr.nomad.version} semver >= 1.7.0-a``),
    in nomad v1.10.0 ``nomad/job_endpoint_hooks.go`` and
    ``nomad/job_endpoint_hook_implicit_identities.go``. Exact values, not just the LTarget, so
    a user's own ``${attr.vault.version} >= 1.15`` is never taken for ours.
    """
    if not isinstance(constraint, Mapping):
        return False
    left = constraint.get("LTarget")
    right = constraint.get("RTarget")
    operand = constraint.get("Operand")
    if not (isinstance(left, str) and isinstance(right, str)):
        return False
    if left == "${attr.os.signals}" and operand == "set_contains":
        return set(right.split(",")) >= _SIDECAR_SIGNALS
    if operand != "semver":
        return False
    if left == "${attr.vault.version}":
        return right == ">= 0.6.1"
    if _VAULT_CLUSTER_VERSION.fullmatch(left):
        return right == ">= 1.11.0"
    return (left, right) == ("${attr.nomad.version}", ">= 1.7.0-a")


# The signals the sidecar makes Nomad require: its templates' ChangeSignal and its KillSignal.
_SIDECAR_SIGNALS = frozenset({"SIGHUP", "SIGQUIT"})
_VAULT_CLUSTER_VERSION = re.compile(r"\$\{attr\.vault\.[^.{}]+\.version\}")


def _constraint_key(constraint: object) -> str:
    """Equality as Nomad's ``Constraint.Equal`` sees it (LTarget, RTarget, Operand)."""
    c = jobview.as_map(constraint)
    return json.dumps([c.get("LTarget"), c.get("RTarget"), c.get("Operand")])


def _drop_implied(group: dict[str, Any], before: object) -> None:
    """Drop the sidecar-implied constraints the group did not have before injection."""
    current = group.get("Constraints")
    if not isinstance(current, list):
        return
    allowance = Counter(_constraint_key(c) for c in jobview.as_list(before))
    kept: list[Any] = []
    for constraint in current:
        if is_sidecar_implied(constraint):
            key = _constraint_key(constraint)
            if allowance[key] <= 0:
                continue
            allowance[key] -= 1
        kept.append(constraint)
    if len(kept) == len(current):
        return
    if kept:
        group["Constraints"] = kept
    elif before == "absent":
        del group["Constraints"]
    elif before is None:
        group["Constraints"] = None
    else:
        group["Constraints"] = kept


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
