"""Simulated client nodes and their dynamic port pools.

Node i listens on its own loopback address 127.0.0.(10+i), so allocations on different
nodes never share an address. Dynamic ports come from Nomad's default range 20000-32000
and are handed out per node address; a port is only handed out if nothing on this host
can be found bound to it (a real bind test), because raw_exec tasks bind for real.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field
from typing import Any

from devstack.nomad.codec import new_id

MIN_DYNAMIC_PORT = 20000
MAX_DYNAMIC_PORT = 32000


class PortsExhausted(Exception):
    """No free dynamic port is left on a node."""


@dataclass
class Node:
    index: int
    id: str = field(default_factory=new_id)
    datacenter: str = "dc1"
    used: set[int] = field(default_factory=set)

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


def make_nodes(count: int) -> list[Node]:
    return [Node(index=i) for i in range(1, count + 1)]
