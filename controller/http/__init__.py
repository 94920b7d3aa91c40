"""The controller's own HTTP surface: /healthz, /readyz, /metrics, /status."""

from controller.http.metrics import PhaseCollector, register_phase_gauge
from controller.http.probes import LeaderFacts, ProbeState, Verdict, health, readiness
from controller.http.server import ControllerView, HttpLimits, HttpServer

__all__ = [
    "ControllerView",
    "HttpLimits",
    "HttpServer",
    "LeaderFacts",
    "PhaseCollector",
    "ProbeState",
    "Verdict",
    "health",
    "readiness",
    "register_phase_gauge",
]
