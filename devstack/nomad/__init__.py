"""The Nomad API twin: a faithful in-process stand-in for the parts of Nomad 1.10 we use.

Jobs, allocations, evaluations and deployments from a small scheduler over simulated
nodes, the event stream, blocking queries, Variables with CAS and locks, namespaces and
ACL tokens — all held to the reference (see devstack/README.md for what is implemented
and every deviation).
"""

from devstack.nomad.faults import NomadFaults
from devstack.nomad.hooks import AllocHooks, TaskDriver
from devstack.nomad.nodes import HostVolumeConfig, NodeConfig
from devstack.nomad.server import NomadTwin, start_nomad_twin
from devstack.nomad.simdriver import SimulatedDriver
from devstack.nomad.state import NomadState
from devstack.nomad.taskctx import TaskContext

__all__ = [
    "AllocHooks",
    "HostVolumeConfig",
    "NodeConfig",
    "NomadFaults",
    "NomadState",
    "NomadTwin",
    "SimulatedDriver",
    "TaskContext",
    "TaskDriver",
    "start_nomad_twin",
]
