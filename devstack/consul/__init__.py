"""A Consul 1.16 API twin: agent registration, catalog, health with real checks, blocking reads.

Held to the wire facts recorded in tests/fixtures/consul/ and checked with py-consul; see
devstack/README.md ("Consul twin") for what it covers and where it deviates.
"""

from devstack.consul.faults import Faults
from devstack.consul.server import ConsulTwin, start_consul_twin
from devstack.consul.state import ConsulState

__all__ = ["ConsulState", "ConsulTwin", "Faults", "start_consul_twin"]
