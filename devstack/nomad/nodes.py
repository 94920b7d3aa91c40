"""Simulated client nodes and their dynamic port pools.

Node i listens on its own loopback address 127.0.0.(10+i), so allocations on different
nodes never share an address. Dynamic ports come from Nomad's default range 20000-32000
and are handed out per node address; a port is only handed out if nothing on this host
can be found bound to it (a real bind test), because raw_exec tasks bind for real.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.nomad.codec import new_id, now_ns, rfc3339

MIN_DYNAMIC_PORT = 20000
MAX_DYNAMIC_PORT = 32000
# client/pluginmanager/csimanager fingerprint: a plugin reporting MaxVolumes 0 (unlimited)
# is fingerprinted as math.MaxInt64, so CSIVolumeChecker's ``count >= MaxVolumes`` holds.
MAX_VOLUMES_UNLIMITED = 9223372036854775807


@dataclass(frozen=True)
class HostVolumeConfig:
    """A static ``client { host_volume "name" { path, read_only } }`` block: Nomad's
    ``structs.ClientHostVolumeConfig`` (``nomad/structs/volumes.go``); ``ID`` stays empty,
    as it does for every static (non-dynamic) host volume."""

    name: str
    path: str
    read_only: bool = False

    def wire(self) -> dict[str, Any]:
        return {"Name": self.name, "Path": self.path, "ReadOnly": self.read_only, "ID": ""}


@dataclass(frozen=True)
class NodeConfig:
    """What one simulated client advertises beyond the defaults: host volumes from its agent
    config and the CSI node plugins running on it (fingerprinted healthy, node-only: no
    controller). The scheduler's feasibility checkers read exactly these."""

    host_volumes: tuple[HostVolumeConfig, ...] = ()
    csi_node_plugins: tuple[str, ...] = ()


class PortsExhausted(Exception):
    """No free dynamic port is left on a node."""


@dataclass
class Node:
    index: int
    id: str = field(default_factory=new_id)
    datacenter: str = "dc1"
    used: set[int] = field(default_factory=set)
    config: NodeConfig = field(default_factory=NodeConfig)
    create_time: int = field(default_factory=now_ns)

    @property
    def host_volumes(self) -> dict[str, dict[str, Any]]:
        """``Node.HostVolumes``: name -> ClientHostVolumeConfig."""
        return {v.name: v.wire() for v in self.config.host_volumes}

    @property
    def csi_node_plugins(self) -> dict[str, dict[str, Any]]:
        """``Node.CSINodePlugins``: plugin ID -> ``CSIInfo`` as the client fingerprints a
        healthy node plugin (``client/pluginmanager/csimanager``)."""
        return {
            pid: {
                "PluginID": pid,
                "AllocID": "",
                "Healthy": True,
                "HealthDescription": "healthy",
                "UpdateTime": rfc3339(self.create_time),
                "Provider": pid,
                "ProviderVersion": "1.0.0",
                "RequiresControllerPlugin": False,
                "RequiresTopologies": False,
                "NodeInfo": {
                    "ID": self.name,
                    "MaxVolumes": MAX_VOLUMES_UNLIMITED,
                    "AccessibleTopology": None,
                    "RequiresNodeStageVolume": False,
                },
            }
            for pid in self.config.csi_node_plugins
        }

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def address(self) -> str:
        return f"127.0.0.{10 + self.index}"

    def take_port(self, rng: random.Random) -> int:
        for _ in range(200):
            port = rng.randint(MIN_DYNAMIC_PORT, MAX_DYNAMIC_PORT)
            if port in self.used or not _bindable(self.address, port):
                continue
            self.used.add(port)
            return port
        raise PortsExhausted(f"dynamic port selection failed on {self.name}")

    def reserve(self, port: int) -> None:
        self.used.add(port)

    def release(self, ports: list[int]) -> None:
        for port in ports:
            self.used.discard(port)

    def record(self, create_index: int) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Name": self.name,
            "Datacenter": self.datacenter,
            "NodePool": "default",
            "HTTPAddr": f"{self.address}:4646",
            "Address": self.address,
            "Status": "ready",
            "SchedulingEligibility": "eligible",
            "Drain": False,
            "HostVolumes": self.host_volumes or None,
            "CreateIndex": create_index,
            "ModifyIndex": create_index,
        }

    def full(self, create_index: int) -> dict[str, Any]:
        """``GET /v1/node/:id``: the ``structs.Node`` fields the twin models, in the order
        that struct declares them (``nomad/structs/structs.go`` ``Node``)."""
        stub = self.record(create_index)
        return {
            "ID": self.id,
            "Datacenter": self.datacenter,
            "Name": self.name,
            "HTTPAddr": stub["HTTPAddr"],
            "NodeClass": "",
            "NodePool": "default",
            "Drain": False,
            "SchedulingEligibility": "eligible",
            "Status": "ready",
            "StatusDescription": "",
            "CSIControllerPlugins": None,
            "CSINodePlugins": self.csi_node_plugins or None,
            "HostVolumes": self.host_volumes or None,
            "CreateIndex": create_index,
            "ModifyIndex": create_index,
        }


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def make_nodes(count: int, configs: Sequence[NodeConfig] = ()) -> list[Node]:
    """``configs[i]`` configures node ``i + 1``; nodes past the list get the default."""
    return [
        Node(index=i, config=configs[i - 1] if i <= len(configs) else NodeConfig())
        for i in range(1, count + 1)
    ]
