"""PURE: one report edge per upstream of a meshed group — caller -> upstream, and what the
caller's listener finds behind it.

With ``--live`` each edge is judged now, from the catalog answers ``gather`` read (the
upstreams' services are read with the fronted ones), by the same function the health
reconciler records with (``reconcilers.instances.edge_findings.edge_record``), so the report
and the record cannot disagree on what ``empty`` means. Without ``--live`` the edges are the
ones the controller last recorded in each caller's status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.consul.wire import HealthEntry
from controller.ctl.rows import NOMAD_PROVIDER, World
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import EdgeRecord
from crds_equivalent.status_report import EdgeRow
from reconcilers.health.upstreams import job_calls
from reconcilers.injection import jobview
from reconcilers.injection.edges import UpstreamEdge
from reconcilers.instances.edge_findings import edge_record

FAILING = ("empty", "not meshed")


def upstream_services(job: Mapping[str, Any], config: MeshConfig, provider: str) -> list[str]:
    """The upstream services of ``job`` read from ``provider``'s catalog, sorted."""
    return sorted({e.service for e in job_calls(job, config).edges if e.provider == provider})


def _answer(
    world: World, namespace: str, edge: UpstreamEdge
) -> tuple[Sequence[HealthEntry] | None, str]:
    if edge.provider == NOMAD_PROVIDER:
        if world.native_health is None:
            return None, f"upstream {edge.service}: Nomad's service catalog did not answer"
        return world.native_health.get((namespace, edge.service)), ""
    if world.health is None:
        return None, f"upstream {edge.service}: Consul did not answer (or is not configured)"
    return world.health.get(edge.service), ""


def _row(key: JobKey, record: EdgeRecord, source: str) -> EdgeRow:
    return EdgeRow.model_validate(
        {
            "namespace": key[0],
            "job": key[1],
            **record.model_dump(mode="json"),
            "source": source,
            "in_sync": record.state not in FAILING,
        }
    )


def build_edge_rows(world: World) -> list[EdgeRow]:
    """Every edge, sorted by (namespace, job, group, port)."""
    rows: list[EdgeRow] = []
    if world.jobs is None:
        for key, status in world.statuses.items():
            rows.extend(_row(key, record, "record") for record in status.edges)
    else:
        for key, facts in world.jobs.items():
            if facts.job is None or jobview.is_stopped(facts.job):
                continue
            for edge in job_calls(facts.job, world.config).edges:
                found, why = _answer(world, key[0], edge)
                rows.append(_row(key, edge_record(edge, found, why), "live"))
    rows.sort(key=lambda r: (r.namespace, r.job, r.group, r.port))
    return rows
