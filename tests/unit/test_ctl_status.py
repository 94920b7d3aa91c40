"""controllerctl status, pure parts: rows from fake facts, exit codes, table and JSON rendering."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.consul.wire import HealthEntry
from controller.ctl.common import human_duration
from controller.ctl.leader import StatusDoc, leader_info, lock_state, status_url_of
from controller.ctl.report import assemble
from controller.ctl.rows import ORPHANED, JobFacts, World
from controller.ctl.table import make_console, report_view, to_json
from controller.nomad.variables import Variable
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.schemas import SCHEMA_DIR
from crds_equivalent.status import Condition, ConditionType, MeshStatus, Phase
from crds_equivalent.status_report import Backend, LeaderInfo, StatusReport
from reconcilers.injection.plan import Apply, plan_job

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = MeshConfig()
ISSUER = "1111-aaaa"
LEADER = LeaderInfo(identity="node-1/42", since="2025-03-01T09:00:00+00:00", lock="held")
UP = [
    Backend(name="nomad", address="http://n", consulted=True, ok=True),
    Backend(name="consul", address="http://c", consulted=True, ok=True),
    Backend(name="vault", address="http://v", consulted=True, ok=True),
]


def user_job(meta: dict[str, str] | None = None, count: int = 2) -> dict[str, Any]:
    return {
        "ID": "web",
        "Name": "web",
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true", **(meta or {})},
        "TaskGroups": [
            {
                "Name": "app",
                "Count": count,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": "web", "PortLabel": "http", "Provider": "consul"}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "x"}}],
            }
        ],
    }


def injected(meta: dict[str, str] | None = None, index: int = 10) -> dict[str, Any]:
    decision = plan_job(user_job(meta), CONFIG)
    assert isinstance(decision, Apply)
    return {**decision.job, "JobModifyIndex": index, "Version": 1}


def alloc(n: int, sidecar: str = "running") -> dict[str, Any]:
    return {
        "ID": f"a{n}",
        "TaskGroup": "app",
        "ClientStatus": "running",
        "DesiredStatus": "run",
        "TaskStates": {"app": {"State": "running"}, keys.SIDECAR_TASK: {"State": sidecar}},
    }


def entry(sid: str, port: int, tags: tuple[str, ...] = (), status: str = "passing") -> HealthEntry:
    return HealthEntry.from_wire(
        {
            "Node": {"Node": "n1", "Address": "10.0.0.1"},
            "Service": {"ID": sid, "Service": "web", "Port": port, "Tags": list(tags)},
            "Checks": [{"Name": "serfHealth", "Status": "passing"}, {"Status": status}],
        }
    )


def tls_entries(status: str = "passing") -> list[HealthEntry]:
    return [
        entry(f"_nomad-task-a{n}-group-app-web-mesh_tls_http", 20000 + n, ("mesh-tls",), status)
        for n in (1, 2)
    ]


def ready(
    index: int = 10, *, issuer: str = ISSUER, expires: timedelta = timedelta(days=2)
) -> MeshStatus:
    conditions = tuple(
        Condition(type=t, status="True", reason="Ok", last_transition="2025-03-01T10:00:00Z")
        for t in ConditionType
    )
    return MeshStatus(
        phase=Phase.READY,
        observed_index=index,
        spec_hash=injected()["TaskGroups"][0]["Meta"][keys.INJECTED_GROUP_META],
        conditions=conditions,
        cert_not_after=(NOW + expires).isoformat(),
        issuer=f"{issuer} (mesh-int)",
    )


def world(
    job: dict[str, Any] | None,
    *,
    status: MeshStatus | None = None,
    allocs: list[dict[str, Any]] | None = None,
    health: list[HealthEntry] | None = None,
    consul_answered: bool = True,
) -> World:
    statuses = {("default", "web"): status} if status is not None else {}
    return World(
        statuses=statuses,
        now=NOW,
        config=CONFIG,
        jobs={
            ("default", "web"): JobFacts(
                job, allocs if allocs is not None else [alloc(1), alloc(2)]
            )
        },
        health={"web": health if health is not None else tls_entries()}
        if consul_answered
        else None,
        default_issuer=ISSUER,
    )


def report(w: World | None, leader: LeaderInfo | None = LEADER, backends=UP) -> StatusReport:
    return assemble(w, now=NOW, live=True, leader=leader, backends=backends)


def plain_text(rep: StatusReport, wide: bool = False) -> str:
    out = io.StringIO()
    make_console(out, tty=False).print(report_view(rep, wide=wide))
    return out.getvalue()


def test_in_sync_row_and_exit_zero() -> None:
    rep = report(world(injected(), status=ready()))
    assert rep.exit_code == 0 and rep.in_sync
    [row] = rep.rows
    assert (row.group, row.service, row.port, row.mode) == ("app", "web", "http", "strict")
    assert row.injected == "current"
    assert (row.allocs.running, row.allocs.desired) == (2, 2)  # type: ignore[union-attr]
    assert (row.tls.passing, row.tls.registered) == (2, 2)  # type: ignore[union-attr]
    assert row.plaintext == 0 and row.drift == [] and row.phase == "Ready"
    assert row.cert.issuer_state == "current" and row.cert.expires_in_seconds == 2 * 86400
    text = plain_text(rep)
    assert "\x1b[" not in text
    line = next(li for li in text.splitlines() if li.startswith("✔ ") and " web " in li)
    assert line.split()[1:10] == ["web", "app", "web", "strict", "current", "2/2", "2/2", "0", "2d"]
    assert "✔ 1 row in sync (exit 0)" in text
    assert "Leader    node-1/42" in text and "lock held" in text


def test_orphaned_sidecar_is_drift_and_says_so() -> None:
    job = injected()
    job["Meta"] = {}  # the flag removed by hand; the sidecar and markers stay
    rep = report(world(job, status=ready()))
    assert rep.exit_code == 1
    [row] = rep.rows
    assert row.injected == "orphaned" and row.service == "web" and row.port == "http"
    assert row.drift[0] == ORPHANED
    assert "orphaned sidecar" in plain_text(rep)


def test_plaintext_instance_in_strict_mode_is_drift() -> None:
    health = [*tls_entries(), entry("legacy-web-1", 8080)]
    rep = report(world(injected(), status=ready(), health=health))
    [row] = rep.rows
    assert row.plaintext == 1 and rep.exit_code == 1
    assert row.drift == ["1 instance(s) of web still on plaintext (10.0.0.1:8080)"]


def test_permissive_mode_keeps_tagged_plaintext_without_drift() -> None:
    meta = {"mesh.tls.mode": "permissive"}
    job = injected(meta)
    status = ready().model_copy(
        update={"spec_hash": job["TaskGroups"][0]["Meta"][keys.INJECTED_GROUP_META]}
    )
    tagged = entry("_nomad-task-a1-group-app-web-http", 8080, ("mesh-plaintext",))
    rep = report(world(job, status=status, health=[*tls_entries(), tagged]))
    [row] = rep.rows
    assert row.mode == "permissive" and row.plaintext == 1 and row.in_sync
    untagged = entry("_nomad-task-a2-group-app-web-http", 8081)
    rep = report(world(job, status=status, health=[*tls_entries(), tagged, untagged]))
    assert rep.rows[0].drift == ["1 plaintext instance(s) of web lack the tag mesh-plaintext"]


def test_stale_marker_missing_sidecar_and_failing_tls() -> None:
    job = injected()
    job["Meta"]["mesh.tls.ttl"] = "24h"  # spec changed, the controller has not re-injected
    rep = report(
        world(
            job,
            status=ready(),
            allocs=[alloc(1), alloc(2, "pending")],
            health=tls_entries("critical"),
        )
    )
    [row] = rep.rows
    assert row.injected == "stale"
    assert "1/2 allocations run the sidecar" in row.drift
    assert "2/2 TLS registrations not passing" in row.drift
    wide = plain_text(rep, wide=True)
    assert "injected sidecar is stale" in wide and "NAMESPACE" in wide and "ISSUER" in wide
    assert "(+2 more)" in plain_text(rep)


def test_meshed_job_without_record_and_record_without_job() -> None:
    rep = report(world(injected(), status=None))
    [row] = rep.rows
    assert row.phase == "Unknown" and "no status record" in row.drift
    rep = report(world(None, status=ready()))
    [row] = rep.rows
    assert row.group == "" and row.drift == ["job is gone but its status record remains"]


def test_consul_without_answer_leaves_columns_unknown_and_exits_2() -> None:
    down = [UP[0], UP[1].model_copy(update={"ok": False, "error": "connection refused"}), UP[2]]
    rep = report(world(injected(), status=ready(), consul_answered=False), backends=down)
    [row] = rep.rows
    assert row.tls is None and row.plaintext is None and row.in_sync
    assert rep.exit_code == 2 and rep.summary == "cannot read consul (connection refused)"
    assert "consul × http://c" in plain_text(rep)


def test_nomad_down_gives_no_rows_and_exit_2() -> None:
    nomad = UP[0].model_copy(update={"ok": False, "error": "GET /v1/vars: ConnectionRefused"})
    rep = report(None, leader=None, backends=[nomad])
    assert rep.exit_code == 2 and rep.rows == []


def test_certificate_soon_expiring_and_old_issuer() -> None:
    status = ready(issuer="0000-old", expires=timedelta(hours=5))
    rep = report(world(injected(), status=status))
    [row] = rep.rows
    assert row.cert.issuer_state == "old" and row.cert.expires_in_seconds == 5 * 3600
    assert any(d.startswith("certificate expires") for d in row.drift)
    assert "5h old" in plain_text(rep)


def test_leadership_problems_are_drift() -> None:
    assert report(world(injected(), status=ready()), leader=None).exit_code == 1
    released = LEADER.model_copy(update={"lock": "released"})
    rep = report(world(injected(), status=ready()), leader=released)
    assert rep.exit_code == 1 and "no controller holds the leader lock" in rep.summary
    hidden = LEADER.model_copy(update={"lock": "hidden"})
    assert report(world(injected(), status=ready()), leader=hidden).exit_code == 0


def test_json_is_the_documented_contract() -> None:
    rep = report(world(injected(), status=ready()))
    doc = json.loads(to_json(rep))
    assert StatusReport.model_validate(doc) == rep
    schema = json.loads((SCHEMA_DIR / "status-report.schema.json").read_text(encoding="utf-8"))
    assert set(doc) == set(schema["properties"])
    row_schema = schema["$defs"]["StatusRow"]["properties"]
    assert set(doc["rows"][0]) == set(row_schema)
    assert doc["version"] == 1 and doc["exit_code"] == 0


def test_leader_info_from_lock_and_status_document() -> None:
    var = Variable(
        namespace="default",
        path=keys.VAR_LEADER,
        items={"identity": "n2/7", "since": "2025-03-01T11:00:00+00:00", "version": "0.1.0"},
        lock_id="abc",
    )
    doc = StatusDoc(
        "http://127.0.0.1:9464/status",
        {"event_stream": {"last_index": 812, "last_line_age_s": 1.5}, "queue": {"depth": 3}},
    )
    info = leader_info(var, None, doc)
    assert (info.identity, info.lock, info.last_event_index, info.queue_depth) == (
        "n2/7",
        "held",
        812,
        3,
    )
    unlocked = Variable(namespace="default", path=keys.VAR_LEADER, items={})
    assert lock_state(unlocked, True) == "released"
    assert lock_state(unlocked, False) == "hidden"
    assert lock_state(unlocked, None) == "unknown"
    text = plain_text(report(world(injected(), status=ready()), leader=info))
    assert "Events    last index 812, last line 1.5s ago; queue depth 3" in text


@pytest.mark.parametrize(
    ("explicit", "items", "url"),
    [
        (None, {}, ""),
        ("127.0.0.1:9464", {}, "http://127.0.0.1:9464/status"),
        ("https://ctl.example/status/", {}, "https://ctl.example/status"),
        (None, {"status_url": "http://10.0.0.5:9464"}, "http://10.0.0.5:9464/status"),
    ],
)
def test_status_url(explicit: str | None, items: dict[str, str], url: str) -> None:
    assert status_url_of(explicit, items) == url


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (65, "1m5s"),
        (3600, "1h"),
        (86399, "23h59m"),
        (90000, "1d1h"),
        (864005, "10d"),
        (-3600, "-1h"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_watch_prints_one_report_per_interval_until_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.cmd import status as status_cmd

    reports = iter([report(world(injected(), status=ready())), report(world(None, status=ready()))])

    async def fake_report(*_: object) -> StatusReport:
        return next(reports)

    def fake_sleep(_: float) -> None:
        if not hasattr(fake_sleep, "called"):
            fake_sleep.called = True  # type: ignore[attr-defined]
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(status_cmd, "one_report", fake_report)
    monkeypatch.setattr(status_cmd.time, "sleep", fake_sleep)
    code = status_cmd._watch(None, None, "table", 0.0)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert code == 1  # the last report's
    assert out.count("Leader    node-1/42") == 2 and "\x1b[" not in out
    assert "✔ 1 row in sync (exit 0)" in out and "job is gone" in out


def test_rows_show_upstreams_and_the_allow_list() -> None:
    meta = {
        "mesh.tls.mtls": "true",
        "mesh.tls.allow": "frontend, reports",
        "mesh.tls.upstreams": "billing:9001, search:9002/tcp",
    }
    [row] = report(world(injected(meta))).rows
    assert row.upstreams == ["billing:9001/http@consul", "search:9002/tcp@consul"]
    assert row.allow == ["frontend", "reports"]
    assert row.injected == "current"
    wide = plain_text(report(world(injected(meta))), wide=True)
    assert "billing:9001/http@consul, search:9002/tcp@consul" in wide.replace("\n", " ")
    [plain_row] = report(world(injected())).rows
    assert plain_row.upstreams == [] and plain_row.allow == []


def test_a_dropped_upstream_listener_port_makes_the_row_stale() -> None:
    job = injected({"mesh.tls.upstreams": "billing:9001"})
    job["TaskGroups"][0]["Networks"][0]["ReservedPorts"] = []
    [row] = report(world(job)).rows
    assert row.injected == "stale"
