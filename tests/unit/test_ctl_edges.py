"""controllerctl status, one edge per upstream: judged live from the catalogs (healthy count,
``empty``, ``not meshed``, unknown), or as recorded without --live; drift and exit code, the
table's UPSTREAMS lines, the JSON document, and allow warnings that are not drift."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

from controller.consul.wire import HealthEntry
from controller.ctl.report import assemble
from controller.ctl.rows import JobFacts, World
from controller.ctl.table import make_console, report_view, to_json
from crds_equivalent.config import MeshConfig
from crds_equivalent.schemas import SCHEMA_DIR
from crds_equivalent.status import EdgeRecord, MeshStatus, Phase
from crds_equivalent.status_report import Backend, LeaderInfo, StatusReport
from reconcilers.injection.plan import Apply, plan_job

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = MeshConfig()
LEADER = LeaderInfo(identity="node-1/42", since="2025-03-01T09:00:00+00:00", lock="held")
UP = [
    Backend(name=n, address=f"http://{n}", consulted=True, ok=True)  # type: ignore[arg-type]
    for n in ("nomad", "consul", "vault")
]
KEY = ("default", "report")


def pure_client(upstreams: str) -> dict[str, Any]:
    user = {
        "ID": "report",
        "Name": "report",
        "Namespace": "default",
        "Type": "batch",
        "Meta": {"mesh.tls": "true", "mesh.tls.upstreams": upstreams},
        "TaskGroups": [
            {
                "Name": "run",
                "Networks": [{"Mode": "bridge"}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "r"}}],
            }
        ],
    }
    decision = plan_job(user, CONFIG)
    assert isinstance(decision, Apply)
    return {**decision.job, "JobModifyIndex": 10, "Version": 1}


def instance(service: str, tags: tuple[str, ...] = ("mesh-tls",)) -> HealthEntry:
    return HealthEntry.from_wire(
        {
            "Node": {"Node": "n1", "Address": "10.0.0.1"},
            "Service": {"ID": f"{service}-{tags}", "Service": service, "Port": 1, "Tags": tags},
            "Checks": [{"Status": "passing"}],
        }
    )


def live(health: dict[str, list[HealthEntry]] | None, status: MeshStatus | None = None) -> World:
    job = pure_client("billing:9001, search:9002/tcp, ledger:9003@nomad")
    return World(
        statuses={KEY: status} if status is not None else {},
        now=NOW,
        config=CONFIG,
        jobs={KEY: JobFacts(job, [])},
        health=health,
        native_health={("default", "ledger"): [instance("ledger")]},
    )


def report(world: World, live_: bool = True) -> StatusReport:
    return assemble(world, now=NOW, live=live_, leader=LEADER, backends=UP)


def text(rep: StatusReport, wide: bool = False) -> str:
    out = io.StringIO()
    make_console(out, tty=False).print(report_view(rep, wide=wide))
    return out.getvalue()


def test_each_upstream_is_an_edge_judged_from_its_own_catalog() -> None:
    health = {"billing": [instance("billing"), instance("billing")], "search": []}
    rep = report(live(health))
    got = [(e.job, e.group, e.service, e.port, e.state, e.healthy, e.in_sync) for e in rep.edges]
    assert got == [
        ("report", "run", "billing", 9001, "healthy", 2, True),
        ("report", "run", "search", 9002, "empty", 0, False),
        ("report", "run", "ledger", 9003, "healthy", 1, True),
    ]
    assert {e.source for e in rep.edges} == {"live"}
    assert rep.exit_code == 1
    assert "1 of 3 upstream edges failing" in rep.summary
    lines = text(rep).splitlines()
    billing = next(line for line in lines if "billing:9001" in line)
    assert billing.split() == ["✔", "report/run", "→", "billing:9001/http@consul", "2", "healthy"]
    search = next(line for line in lines if "search:9002" in line)
    assert search.split()[:6] == ["×", "report/run", "→", "search:9002/tcp@consul", "0", "empty"]
    assert "no healthy mesh-tls instance in consul (none registered)" in search


def test_an_unmeshed_upstream_is_drift_and_says_so() -> None:
    health = {"billing": [instance("billing", ("v1",))], "search": [instance("search")]}
    [billing] = [e for e in report(live(health)).edges if e.service == "billing"]
    assert (billing.state, billing.in_sync) == ("not meshed", False)
    assert 'none tagged "mesh-tls": it is not meshed' in billing.message


def test_a_catalog_that_did_not_answer_is_unknown_not_drift() -> None:
    rep = report(live(None))
    states = {e.service: (e.state, e.healthy, e.in_sync) for e in rep.edges}
    assert states["billing"] == states["search"] == ("unknown", None, True)
    assert states["ledger"] == ("healthy", 1, True)  # Nomad's catalog did answer


def test_without_live_the_recorded_edges_are_shown() -> None:
    record = EdgeRecord(
        group="run",
        service="billing",
        port=9001,
        protocol="http",
        provider="consul",
        state="empty",
        healthy=0,
        message="no healthy instance",
    )
    status = MeshStatus(phase=Phase.INJECTED, edges=(record,))
    world = World(statuses={KEY: status}, now=NOW, config=CONFIG, jobs=None)
    [edge] = report(world, live_=False).edges
    assert (edge.source, edge.state, edge.in_sync, edge.message) == (
        "record",
        "empty",
        False,
        "no healthy instance",
    )


def test_the_json_carries_the_edges_and_the_schema_describes_them() -> None:
    health = {"billing": [instance("billing")], "search": [instance("search")]}
    doc = json.loads(to_json(report(live(health))))
    assert doc["edges"][0] == {
        "namespace": "default",
        "job": "report",
        "group": "run",
        "service": "billing",
        "port": 9001,
        "protocol": "http",
        "provider": "consul",
        "state": "healthy",
        "healthy": 1,
        "message": "",
        "handshake_error": "",
        "source": "live",
        "in_sync": True,
    }
    schema = json.loads((SCHEMA_DIR / "status-report.schema.json").read_text(encoding="utf-8"))
    edge = schema["$defs"]["EdgeRow"]
    assert set(edge["properties"]) == set(doc["edges"][0])
    assert edge["properties"]["state"]["enum"] == [
        "healthy",
        "empty",
        "not meshed",
        "handshake failed",
        "unknown",
    ]
    assert "warnings" in schema["$defs"]["StatusRow"]["properties"]


def test_an_allow_warning_is_shown_but_is_not_drift() -> None:
    health = {"billing": [instance("billing")], "search": [instance("search")]}
    warning = 'allow names "reprot"'
    status = MeshStatus(phase=Phase.READY, warnings=(warning,))
    rep = report(live(health, status))
    [row] = rep.rows
    assert row.warnings == [warning]
    assert (row.tls, row.plaintext) == (None, None)  # a pure client registers nothing
    assert all("reprot" not in d for d in row.drift)  # the row drifts for its own reasons
    assert f"‼ {warning}" in text(rep, wide=True)


def test_live_edges_carry_the_recorded_handshake_error_and_failure() -> None:
    error = "10.0.0.1:1 (billing.service.consul): unable to get local issuer certificate"
    failed = EdgeRecord(
        group="run",
        service="billing",
        port=9001,
        protocol="http",
        provider="consul",
        state="handshake failed",
        healthy=0,
        message="every healthy mesh-tls instance failed a verified TLS handshake",
        handshake_error=error,
    )
    flaky = failed.model_copy(
        update={"service": "search", "port": 9002, "state": "healthy", "healthy": 1}
    )
    status = MeshStatus(phase=Phase.INJECTED, edges=(failed, flaky))
    health = {"billing": [instance("billing")], "search": [instance("search")]}
    rep = report(live(health, status))
    edges = {e.service: e for e in rep.edges}
    # the catalog performs no handshake, so it cannot contradict the controller's probe
    billing = edges["billing"]
    assert (billing.state, billing.healthy, billing.in_sync) == ("handshake failed", 0, False)
    assert billing.handshake_error == error
    search = edges["search"]
    assert (search.state, search.handshake_error, search.in_sync) == ("healthy", error, True)
    line = next(line for line in text(rep).splitlines() if "search:9002" in line)
    assert f"last handshake error: {error}" in line
