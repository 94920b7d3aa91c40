"""Field-level rewrites of the user's services, checks and ports (pure, copy-on-write).

Each function returns new dicts and never mutates its input. It copies only the containers it
changes: the values below them are the user's, shared with the output and never changed (the
injection's output is only ever serialised or read). Deep copies of every service and network
were a third of an injection's CPU in a profile of the controller. Keys a rewrite adds are
inserted where Nomad's struct order puts them, so a rendered job reads like one Nomad printed.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from reconcilers.injection.jobview import PortView, as_list, as_str

GROUP_ORDER = (
    "Name", "Count", "Update", "Migrate", "Constraints", "Scaling", "RestartPolicy",
    "Disconnect", "Tasks", "EphemeralDisk", "Meta", "ReschedulePolicy", "Affinities", "Spreads",
    "Networks", "Consul", "Services", "Volumes", "ShutdownDelay", "MaxRunDuration",
    "StopAfterClientDisconnect", "MaxClientDisconnect", "PreventRescheduleOnLost",
)  # fmt: skip
SERVICE_ORDER = (
    "Name", "TaskName", "PortLabel", "AddressMode", "Address", "EnableTagOverride", "Tags",
    "CanaryTags", "Checks", "Connect", "Meta", "CanaryMeta", "Weights", "TaggedAddresses",
    "Namespace", "OnUpdate", "Provider", "Cluster", "Identity", "Kind",
)  # fmt: skip
CHECK_ORDER = (
    "Name", "Type", "Command", "Args", "Path", "Protocol", "PortLabel", "Expose", "AddressMode",
    "Interval", "Timeout", "InitialStatus", "Notes", "TLSServerName", "TLSSkipVerify", "Method",
    "Header", "CheckRestart", "GRPCService", "GRPCUseTLS", "TaskName", "SuccessBeforePassing",
    "FailuresBeforeCritical", "FailuresBeforeWarning", "Body", "OnUpdate",
)  # fmt: skip
NETWORK_ORDER = (
    "Mode", "Device", "CIDR", "IP", "Hostname", "MBits", "DNS", "ReservedPorts", "DynamicPorts",
    "CNI",
)  # fmt: skip


def set_ordered(
    target: MutableMapping[str, Any], key: str, value: Any, order: Sequence[str]
) -> None:
    """``target[key] = value``; a NEW key goes before the next key of ``order`` present."""
    if key in target or key not in order:
        target[key] = value
        return
    later = set(order[order.index(key) + 1 :])
    items = list(target.items())
    position = next((i for i, (k, _) in enumerate(items) if k in later), len(items))
    items.insert(position, (key, value))
    target.clear()
    target.update(items)


def _with_tag(service: MutableMapping[str, Any], tag: str) -> None:
    tags = [t for t in as_list(service.get("Tags"))]
    if tag not in tags:
        tags.append(tag)
    set_ordered(service, "Tags", tags, SERVICE_ORDER)
    canary = as_list(service.get("CanaryTags"))
    if canary and tag not in canary:
        # Canary tags replace Tags while an allocation is a canary; the marker must survive.
        service["CanaryTags"] = [*canary, tag]


def plaintext_service(service: Mapping[str, Any]) -> dict[str, Any]:
    """Permissive mode: the original registration, tagged so callers can tell it apart."""
    out = dict(service)
    _with_tag(out, keys.PLAINTEXT_SERVICE_TAG)
    return out


def tls_service(
    service: Mapping[str, Any],
    name: str,
    tls_labels: Mapping[str, str],
    config: MeshConfig,
) -> dict[str, Any]:
    """The service moved to its TLS port, tagged, with checks that speak TLS where they can.

    ``tls_labels`` maps each fronted label to its TLS label; ``name`` is the resolved service
    name (the checks' TLS server name).
    """
    out = dict(service)
    label = as_str(out.get("PortLabel"))
    out["PortLabel"] = tls_labels[label]
    _with_tag(out, keys.TLS_SERVICE_TAG)
    checks = out.get("Checks")
    if isinstance(checks, list):
        # Nomad refuses tls_server_name on a nomad-provider check ("tls_server_name may only be
        # set for Consul service checks", nomad/structs/services.go, validateNomad), and its
        # native checker would ignore it anyway (client/serviceregistration/checks/result.go,
        # GetCheckQuery copies no server name): such checks verify by address or skip.
        native = as_str(out.get("Provider")) == "nomad"
        server_name = "" if native else f"{name}.{config.domain}"
        out["Checks"] = [
            _tls_check(dict(check), label, tls_labels, server_name, config, native=native)
            if isinstance(check, dict)
            else check
            for check in checks
        ]
    return out


def _tls_check(
    check: dict[str, Any],
    service_label: str,
    tls_labels: Mapping[str, str],
    server_name: str,
    config: MeshConfig,
    *,
    native: bool = False,
) -> dict[str, Any]:
    """http -> https on the TLS port; tcp -> the TLS port; grpc and script stay as they were.

    A check without its own port follows the service; grpc would then speak plaintext to
    nginx, so it is pinned to the app's port, which keeps it checking what it checked before.
    An empty ``server_name`` (a Nomad-native check) sets no ``TLSServerName``.

    A Nomad-native check moved to a TLS port names that port itself (``native``): the client
    keys its check runners by ``NomadCheckID``, a hash of the check's own fields that does not
    include the service's port (nomad/structs/checks.go), and starts one runner per ID
    (client/allocrunner/checks_hook.go, ``observe``: "an observer for this check already
    exists"). A tcp check following its service would hash like its plaintext twin kept in
    permissive mode, so the TLS one would never run; its own PortLabel makes the IDs differ.
    """
    kind = as_str(check.get("Type")).lower()
    own = as_str(check.get("PortLabel"))
    if kind == "grpc":
        if not own:
            set_ordered(check, "PortLabel", service_label, CHECK_ORDER)
        return check
    if kind not in ("http", "tcp") or (own or service_label) not in tls_labels:
        return check
    if own:
        check["PortLabel"] = tls_labels[own]
    elif native:
        set_ordered(check, "PortLabel", tls_labels[service_label], CHECK_ORDER)
    if kind == "http":
        set_ordered(check, "Protocol", "https", CHECK_ORDER)
        if server_name:
            set_ordered(check, "TLSServerName", server_name, CHECK_ORDER)
        set_ordered(check, "TLSSkipVerify", config.check_tls_skip_verify, CHECK_ORDER)
    return check


def rewrite_services(
    services: Sequence[Any],
    names: Mapping[int, str],
    tls_labels: Mapping[str, str],
    permissive: bool,
    config: MeshConfig,
) -> list[Any]:
    """A new service list: fronted entries (by index, with their names) switched to TLS.

    Permissive mode keeps the original right before its TLS twin; Nomad allows two services
    with one name on different ports (it keys duplicates by name + port label).
    """
    out: list[Any] = []
    for index, service in enumerate(services):
        if index not in names or not isinstance(service, Mapping):
            out.append(service)
            continue
        if permissive:
            out.append(plaintext_service(service))
        out.append(tls_service(service, names[index], tls_labels, config))
    return out


def tls_port(port: PortView) -> dict[str, Any]:
    """The dynamic TLS port fronting ``port``, on the same host network.

    In a namespaced (bridge/CNI) network ``To: -1`` maps the host port to the same port number
    inside the namespace, so nginx listens on NOMAD_PORT_ (= the host port); in host mode no
    mapping applies and ``To`` stays 0.
    """
    host_network = port.host_network
    if port.task is not None and host_network == "default":
        # The task's network is not restored from our undo record, so Nomad's canonical
        # "default" comes back; "" (the same network) keeps the output stable.
        host_network = ""
    return {
        "Label": keys.tls_port_label(port.label),
        "Value": 0,
        "To": -1 if port.namespaced and port.task is None else 0,
        "HostNetwork": host_network,
    }


def add_ports(networks: Sequence[Any], ports: Sequence[PortView]) -> list[Any]:
    """A new network list with one TLS port per fronted port.

    A group port's TLS port goes into the port's own group network. A task-level port's TLS
    port goes into the group's FIRST network (one in host mode is created when the group has
    none), never into the sidecar's own ``Resources.Networks``:
    - a service can only name a port of ``tgNetworks[0]`` or of its OWN task's networks
      (nomad/structs/structs.go, validateServices), so a TLS port on the sidecar task would
      make every moved task service fail validation;
    - the scheduler reserves only ``TaskGroup.Networks[0]`` for the group and each task's
      ``Resources.Networks[0]`` independently (scheduler/rank.go, BinPackIterator.Next), and
      TaskGroup.validateNetworks only forbids a label or static port used twice, so a group
      network beside task-level networks is a shape Nomad accepts;
    - group ports land in ``AllocatedResources.Shared.Ports``, which every task's env and
      every service registration reads (client/taskenv/env.go, Builder.setAlloc/addPorts;
      client/serviceregistration/address.go, GetAddress), and they add no deprecation warning.
    """
    out = [dict(n) if isinstance(n, dict) else n for n in networks]
    for port in ports:
        if port.task is not None:
            if not out:  # the planner refuses a first network that is not an object
                out.append({"Mode": "host", "DynamicPorts": []})
            network = out[0]
        else:
            network = out[port.network_index]
        dynamic = as_list(network.get("DynamicPorts"))
        set_ordered(network, "DynamicPorts", [*dynamic, tls_port(port)], NETWORK_ORDER)
    return out
