"""``mesh_jobs{phase}``: how many jobs are in each phase, computed when Prometheus scrapes.

The phases live in the reconciler's memory (it records one per reconcile), so the gauge is a
custom collector that asks for the counts at scrape time instead of a gauge someone must keep in
step. Every phase is always exported (0 when empty), so dashboards and alerts never see a
series disappear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from crds_equivalent.status import Phase


class PhaseCollector(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mesh_jobs", "Meshed jobs by phase, as this leader last saw them.", labels=["phase"]
        )
        counts = self._counts()
        for phase in Phase:
            family.add_metric([str(phase)], float(counts.get(str(phase), 0)))
        yield family


def register_phase_gauge(
    registry: CollectorRegistry, counts: Callable[[], Mapping[str, int]]
) -> PhaseCollector:
    """Add ``mesh_jobs{phase}`` to ``registry``."""
    collector = PhaseCollector(counts)
    registry.register(collector)
    return collector
