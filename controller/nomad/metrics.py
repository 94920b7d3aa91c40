"""Prometheus families of the event source (created once per registry) and of the shared client.

A registry refuses a name twice, and tests build many sources; caching per registry lets each
source (or each test) share or isolate metrics by choosing the registry.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.nomad.inflight import InFlight


@dataclass(frozen=True)
class StreamMetrics:
    last_index: Gauge
    last_frame: Gauge
    reconnects: Counter
    resyncs: Counter


_cache: weakref.WeakKeyDictionary[CollectorRegistry, StreamMetrics] = weakref.WeakKeyDictionary()


def stream_metrics(registry: CollectorRegistry) -> StreamMetrics:
    """The event source's metric families on ``registry``."""
    found = _cache.get(registry)
    if found is None:
        found = StreamMetrics(
            last_index=Gauge(
                "nomad_event_stream_last_index",
                "Raft index of the last event frame processed.",
                registry=registry,
            ),
            last_frame=Gauge(
                "nomad_event_stream_last_frame_timestamp_seconds",
                "Unix time of the last line (event frame or heartbeat) read from the event "
                "stream; 0 before the first. Nomad sends a heartbeat every 10 s.",
                registry=registry,
            ),
            reconnects=Counter(
                "nomad_event_stream_reconnects",
                "Event stream reconnects (each preceded by a LIST).",
                registry=registry,
            ),
            resyncs=Counter(
                "nomad_event_stream_resyncs",
                "Periodic full resyncs (LIST + enqueue).",
                registry=registry,
            ),
        )
        _cache[registry] = found
    return found


def register_client_gauges(registry: CollectorRegistry, slots: InFlight) -> None:
    """``nomad_requests_in_flight`` and ``nomad_requests_waiting`` of the shared Nomad client:
    a waiting count that stays above 0 says MESH_NOMAD_CONCURRENCY is what paces the work."""
    Gauge(
        "nomad_requests_in_flight",
        "Nomad requests (not the event stream, not the leader lock) open now.",
        registry=registry,
    ).set_function(lambda: slots.in_flight)
    Gauge(
        "nomad_requests_waiting",
        "Nomad requests queued for a slot: MESH_NOMAD_CONCURRENCY are already open.",
        registry=registry,
    ).set_function(lambda: slots.waiting)
