"""Read-only views over the RAW Nomad job dict.

The job is kept as the JSON Nomad gave us and never decoded into models and re-encoded: a
round trip through models would drop fields we do not know (Nomad adds some every release) and
re-order keys. These helpers read the shapes the transforms need, tolerating the request shape
(``null`` for unset pointers, keys missing) and the stored shape (canonicalised, every key set).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from crds_equivalent import keys

# Network modes whose tasks share one network namespace (ports are reached on 127.0.0.1 and
# a port's `To` is the in-namespace port).
_NAMESPACED_MODES = ("bridge",)
_CNI_PREFIX = "cni/"
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def as_list(value: object) -> list[Any]:
    """``value`` if it is a JSON list, else an empty list (``null`` and garbage read as empty)."""
    return value if isinstance(value, list) else []


def as_map(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty mapping."""
    return value if isinstance(value, Mapping) else {}


def as_str(value: object) -> str:
    """``value`` if it is a string, else ``""`` (Nomad's zero value)."""
    return value if isinstance(value, str) else ""


def namespace(job: Mapping[str, Any]) -> str:
    """The job's namespace; unset (request shape) means ``default``, as Nomad stores it."""
    return as_str(job.get("Namespace")) or "default"


def job_id(job: Mapping[str, Any]) -> str:
    return as_str(job.get("ID"))


def job_name(job: Mapping[str, Any]) -> str:
    """The job's name; Nomad defaults it to the ID."""
    return as_str(job.get("Name")) or job_id(job)


def job_modify_index(job: Mapping[str, Any]) -> int:
    """The raft index of the job's last spec change (not bumped by a status change)."""
    return int(job.get("JobModifyIndex") or 0)


def is_stopped(job: Mapping[str, Any]) -> bool:
    return job.get("Stop") is True


def parent_id(job: Mapping[str, Any]) -> str:
    """The ID of the job this one was derived from, ``""`` for a job a user registered.

    Nomad sets ``ParentID`` on the children it derives itself: a periodic launch
    (``nomad/periodic.go`` ``PeriodicDispatch.deriveJob``: ``derived.ParentID = periodicJob.ID``)
    and a dispatch (``nomad/job_endpoint.go`` ``Job.Dispatch``: ``dispatchJob.ParentID =
    parameterizedJob.ID``). A register through the HTTP API cannot set it
    (``command/agent/job_endpoint.go`` ``ApiJobToStructJob`` does not copy it), so a non-empty
    value always means "Nomad made this job from another one".
    """
    return as_str(job.get("ParentID"))


def is_child(job: Mapping[str, Any]) -> bool:
    """A periodic or dispatched child: its spec is its parent's, and only its parent is ours to
    write (re-registering it would detach or refuse it, see ``parent_id``)."""
    return bool(parent_id(job))


def launches_children(job: Mapping[str, Any]) -> bool:
    """A periodic or parameterized parent: it never runs allocations itself, its children do.

    Mirrors ``nomad/structs/structs.go`` ``Job.IsPeriodic`` (a ``Periodic`` block; Nomad keeps
    tracking it only when enabled, but a disabled one is still a parent of the children it
    launched) and ``Job.IsParameterized`` (``ParameterizedJob != nil && !Dispatched``); a child
    is never a parent, whatever blocks it copied.
    """
    if is_child(job):
        return False
    if isinstance(job.get("Periodic"), Mapping):
        return True
    return isinstance(job.get("ParameterizedJob"), Mapping) and job.get("Dispatched") is not True


def groups(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The task groups that are JSON objects, in job order."""
    return [g for g in as_list(job.get("TaskGroups")) if isinstance(g, Mapping)]


def group_name(group: Mapping[str, Any]) -> str:
    return as_str(group.get("Name"))


def tasks(group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in as_list(group.get("Tasks")) if isinstance(t, Mapping)]


def task_name(task: Mapping[str, Any]) -> str:
    return as_str(task.get("Name"))


def is_managed_sidecar(task: Mapping[str, Any]) -> bool:
    """True for the sidecar task this controller injected (name AND managed marker)."""
    return (
        task_name(task) == keys.SIDECAR_TASK
        and as_map(task.get("Meta")).get(keys.MANAGED_TASK_META) == "true"
    )


def group_meta(group: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(group.get("Meta"))


def is_namespaced_mode(mode: str) -> bool:
    """Bridge and CNI networks give the group its own namespace; host (or "") does not."""
    return mode in _NAMESPACED_MODES or mode.startswith(_CNI_PREFIX)


@dataclass(frozen=True)
class PortView:
    """One port label of a group network or of a task's ``Resources.Networks``.

    ``task`` is None for a group port, else the name of the task whose (deprecated, still
    honoured) task-level network declares it; ``network_index`` indexes the group's
    ``Networks`` or that task's ``Resources.Networks`` accordingly.
    """

    label: str
    network_index: int
    kind: str  # "ReservedPorts" (static) or "DynamicPorts"
    port: Mapping[str, Any]
    mode: str  # network mode, "" normalised to "host"
    task: str | None = None

    @property
    def host_network(self) -> str:
        return as_str(self.port.get("HostNetwork"))

    @property
    def namespaced(self) -> bool:
        return is_namespaced_mode(self.mode)

    @property
    def static_value(self) -> int:
        """The reserved host port (0 for a dynamic port)."""
        value = self.port.get("Value")
        return value if self.kind == "ReservedPorts" and isinstance(value, int) else 0


def _network_ports(networks: object, task: str | None) -> Iterator[PortView]:
    for index, network in enumerate(as_list(networks)):
        if not isinstance(network, Mapping):
            continue
        mode = as_str(network.get("Mode")) or "host"
        for kind in ("ReservedPorts", "DynamicPorts"):
            for port in as_list(network.get(kind)):
                if isinstance(port, Mapping) and as_str(port.get("Label")):
                    yield PortView(as_str(port.get("Label")), index, kind, port, mode, task)


def ports(group: Mapping[str, Any]) -> dict[str, PortView]:
    """Every port label of the group's networks (first declaration wins), in order."""
    found: dict[str, PortView] = {}
    for view in _network_ports(group.get("Networks"), None):
        found.setdefault(view.label, view)
    return found


def task_ports(group: Mapping[str, Any]) -> list[PortView]:
    """Every port of the tasks' ``Resources.Networks``, task by task, in declaration order.

    A list, not a map: Nomad lets two tasks declare the same label (nomad/structs/structs.go,
    TaskGroup.validateNetworks only checks task labels against the GROUP's labels), and the
    planner must see both to refuse an ambiguous fronted label.
    """
    found: list[PortView] = []
    for task in tasks(group):
        resources = as_map(task.get("Resources"))
        found.extend(_network_ports(resources.get("Networks"), task_name(task)))
    return found


def all_ports(group: Mapping[str, Any]) -> dict[str, PortView]:
    """Group ports, then task-level ports whose label the group does not declare.

    This is the order in which Nomad resolves a task service's port label
    (nomad/structs/structs.go, validateServices: ``tgNetworks[0].PortLabels()`` first, then
    the task's own ``Resources.Networks``); among tasks, the first declaration wins here, and
    the planner refuses a fronted label that two tasks declare.
    """
    found = ports(group)
    for view in task_ports(group):
        found.setdefault(view.label, view)
    return found


@dataclass(frozen=True)
class ServiceView:
    """A service of the group: group level (``task`` is None) or of the named task."""

    task: str | None
    index: int
    service: Mapping[str, Any]

    @property
    def port_label(self) -> str:
        return as_str(self.service.get("PortLabel"))

    @property
    def provider(self) -> str:
        """Nomad defaults an unset provider to consul."""
        return as_str(self.service.get("Provider")) or "consul"

    @property
    def address_mode(self) -> str:
        return as_str(self.service.get("AddressMode")) or "auto"


def services(group: Mapping[str, Any]) -> Iterator[ServiceView]:
    """Group services first, then each task's services, in declaration order."""
    for index, service in enumerate(as_list(group.get("Services"))):
        if isinstance(service, Mapping):
            yield ServiceView(None, index, service)
    for task in tasks(group):
        for index, service in enumerate(as_list(task.get("Services"))):
            if isinstance(service, Mapping):
                yield ServiceView(task_name(task), index, service)


class UnresolvedName(ValueError):
    """A service name uses interpolation that is only known on the client at run time."""


def service_name(job: Mapping[str, Any], group: Mapping[str, Any], view: ServiceView) -> str:
    """The name Consul will see, as Nomad computes it before the client interpolates.

    Unset names default to ``<job>-<group>[-<task>]``; ``${JOB}``, ``${TASKGROUP}``,
    ``${TASK}`` and ``${BASE}`` are expanded. Any other ``${...}`` raises UnresolvedName,
    because the certificate's CN must be known when the job is written.
    """
    job_part, group_part = job_name(job), group_name(group)
    task_part = view.task or ""
    base = "-".join(p for p in (job_part, group_part, task_part) if p)
    name = as_str(view.service.get("Name"))
    if not name:
        return base
    values = {"JOB": job_part, "TASKGROUP": group_part, "TASK": task_part, "BASE": base}

    def expand(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values or (key == "TASK" and view.task is None):
            raise UnresolvedName(f"service name {name!r} uses ${{{key}}}")
        return values[key]

    return _INTERPOLATION.sub(expand, name)


_CONNECT_KIND_PREFIXES = (
    "connect-proxy",
    "connect-native",
    "connect-ingress",
    "connect-terminating",
    "connect-mesh",
)


def connect_usage(group: Mapping[str, Any]) -> str:
    """What makes the group a Consul Connect group, in words; "" when it is not one.

    Read as Nomad reads it: a group service whose ``Connect`` has a ``SidecarService``, is
    ``Native`` or has a ``Gateway`` (nomad/structs/services.go, ConsulConnect.HasSidecar /
    IsNative / IsGateway); a task whose ``Kind`` carries a Connect prefix (structs.go,
    ConnectProxyPrefix … ConnectMeshPrefix) — which is how the Envoy task Nomad injects looks
    in a stored job (nomad/job_endpoint_hook_connect.go, newConnectSidecarTask names it
    ``connect-proxy-<service>``); and such a task written by hand, by that name.
    """
    for view in services(group):
        connect = as_map(view.service.get("Connect"))
        name = as_str(view.service.get("Name")) or "(unnamed)"
        if connect.get("SidecarService") is not None:
            return f'service "{name}" has connect.sidecar_service'
        if connect.get("Native") is True:
            return f'service "{name}" is Connect native'
        if connect.get("Gateway") is not None:
            return f'service "{name}" is a Connect gateway'
    for task in tasks(group):
        kind = as_str(task.get("Kind"))
        if kind.split(":", 1)[0] in _CONNECT_KIND_PREFIXES:
            return f'task "{task_name(task)}" is of kind "{kind}"'
        if task_name(task).startswith("connect-proxy-"):
            return f'task "{task_name(task)}" is a Connect (Envoy) sidecar'
    return ""
