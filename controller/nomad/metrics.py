"""Prometheus families of the event source, created once per registry.

A registry refuses a name twice, and tests build many sources; caching per registry lets each
source (or each test) share or isolate metrics by choosing the registry.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


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
