"""The control-plane benchmark's pure parts: what it counts and how it judges (never a speed).

The twin's request kinds keep the leader lock apart, per-job figures leave the lock out, churn
latencies come from the twin's register log, the ceiling writes a real status record, and the
targets table judges calls, CPU, leases and RSS from a result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry, generate_latest

from bench import control_plane, cp_phases, cp_report, targets, twin
from bench.ceiling import status_items
from bench.cp_phases import CURRENT, register_latencies
from bench.jobs import user_job
from bench.procs import lock_losses_in, renew_latency, workload
from controller.config.mesh import load_mesh_config
from controller.runtime.metrics import runtime_metrics
from crds_equivalent.keys import INJECTED_GROUP_META
from crds_equivalent.status import MeshStatus, Phase
from reconcilers.injection.plan import Apply, plan_job

pytestmark = pytest.mark.timeout(10)


def test_lock_operations_are_their_own_kind() -> None:
    def kind(method: str, url: str) -> str:
        return twin.request_kind(make_mocked_request(method, url))

    assert kind("PUT", "/v1/var/mesh-controller/leader?lock-renew") == "PUT var lock-renew"
    assert kind("PUT", "/v1/var/mesh-controller/leader?lock-acquire") == "PUT var lock-acquire"
    assert kind("PUT", "/v1/var/mesh-controller/status/bench/a?cas=3") == "PUT var"
    assert kind("POST", "/v1/job/web?namespace=bench") == "POST job"


def test_per_job_figures_leave_the_lock_out() -> None:
    calls = {"GET job": 10, "PUT var": 5, "PUT var lock-renew": 7, "PUT var lock-acquire": 1}
    assert workload(calls) == {"GET job": 10, "PUT var": 5}


def _register(job: str, t_ms: int, revision: str | None, marker: str = "") -> dict[str, Any]:
    return {"ID": job, "SubmitTime": t_ms * 1_000_000, "revision": revision, "markers": [marker]}


def test_churn_latency_is_user_register_to_ours_and_overtaken_updates_are_superseded() -> None:
    ours = f"{CURRENT}abc"
    log = [
        _register("a", 0, None),  # seeded by the benchmark, not an update
        _register("a", 5, None, ours),  # the cold start's injection
        _register("a", 100, "1000"),
        _register("a", 130, "1000", ours),  # 30 ms
        _register("b", 200, "1001"),
        _register("b", 210, "1002"),  # the user again before us: 1001 superseded
        _register("b", 260, "1002", ours),  # 50 ms
        _register("c", 300, "9"),  # a revision of another run: not counted
        _register("c", 301, "9", ours),
    ]
    latencies, superseded = register_latencies(log, {"1000", "1001", "1002"})
    assert sorted(latencies) == [30.0, 50.0]
    assert superseded == 1


def test_the_ceiling_writes_the_record_the_mesh_reconciler_would() -> None:
    decision = plan_job(user_job("svc-00001", seed=3, namespace="ceiling"), load_mesh_config({}))
    assert isinstance(decision, Apply)
    items = status_items(decision.job)
    record = MeshStatus.from_items(items)
    assert record.phase == Phase.INJECTED and record.sidecar_injected
    markers = {g["Meta"][INJECTED_GROUP_META] for g in decision.job["TaskGroups"]}
    assert record.spec_hash in markers


def _point(n: int, *, losses: int, calls: float, cpu: float, rss: float) -> dict[str, Any]:
    churn = [
        {"rate_per_s": rate, "p50_ms": 9.0, "p95_ms": 40.0, "p99_ms": p99, "measured": 500,
         "updates": 600, "superseded": 0, "max_ms": 200.0}
        for rate, p99 in ((20.0, 80.0), (100.0, 180.0))
    ]  # fmt: skip
    return {
        "n": n,
        "ceiling": {"jobs_per_s": 100.0, "twin_cpu_share": 0.9, "driver_cpu_share": 0.1,
                    "seconds": n / 100, "calls_per_job": 3.0},
        "cold_start": {"ratio_to_ceiling": 0.85, "jobs_per_s": 85.0, "seconds": n / 85,
                       "startup_s": 1.0, "jobs_per_s_after_first_write": 90.0,
                       "twin_cpu_share": 0.6, "controller_cpu_share": 0.3},
        "per_new_job": {"calls": {"GET job": 1.0, "POST job": 1.0, "PUT var": calls - 2},
                        "calls_total": calls, "cpu_ms": cpu, "startup_cpu_s": 0.8,
                        "cpu_ms_with_startup": cpu + 0.1, "quiet_s": 3.0},
        "churn": churn,
        "resync": {"seconds": 1.0, "job_writes": 0, "writes": {}, "calls_per_job": 1.0,
                   "cpu_s": 0.5},
        "peak_rss_mb": rss,
        "leadership": {"lock_losses": losses, "lock_terms": 1 + losses, "restarts": [1] * losses},
    }  # fmt: skip


def test_the_targets_judge_calls_cpu_leases_and_rss_at_10k() -> None:
    cp = {
        "points": [
            _point(1000, losses=0, calls=3.0, cpu=3.0, rss=90.0),
            _point(10_000, losses=2, calls=3.5, cpu=3.9, rss=130.0),
        ]
    }
    rows = {row[0]: row for row in targets.against_targets({"control_plane": cp})}
    assert rows["<= 3.2 API calls per newly meshed job at N=10,000"][1:3] == ["3.5", "**not met**"]
    assert rows["<= 4 ms controller CPU per newly meshed job at N=10,000"][2] == "met"
    assert rows["no leader lock lost at N=10,000"][1:3] == ["2 lost", "**not met**"]
    assert rows["controller RSS < 120 MB at N=10,000"][2] == "**not met**"
    churn = rows["p99 event->register under churn < 100 ms at N=1,000 and 20 updates/s"]
    assert churn[1:3] == ["p99 80.0 ms", "met"] and "at 100/s" in churn[3]
    assert rows["a resync of converged jobs makes 0 writes of any kind"][2] == "met"
    check = control_plane.lock_check(cp["points"], 10_000)
    assert check == {"n": 10_000, "lock_losses": 2, "ok": False}
    assert control_plane.lock_check(cp["points"][:1], 10_000) is None


def test_the_per_n_table_has_a_row_per_n_with_both_churn_rates() -> None:
    cp = {"points": [_point(n, losses=0, calls=3.0, cpu=3.0, rss=90.0) for n in (10_000, 100)]}
    lines = cp_report.cp_tables(cp)
    header = lines[2]
    assert "churn 20/s p50 / p95 / p99 ms" in header and "churn 100/s" in header
    assert "lock losses" in header and "CPU ms / new job" in header
    rows = lines[4:6]
    assert rows[0].startswith("| 100 |") and rows[1].startswith("| 10000 |")
    assert "9.0 / 40.0 / 80.0" in rows[0] and "9.0 / 40.0 / 180.0" in rows[0]


def test_leases_lost_are_read_from_the_json_log(tmp_path: Path) -> None:
    log = tmp_path / "controller.log"
    lines = [
        {"event": "became leader", "identity": "a"},
        {"event": "leadership lost", "reason": "renew deadline passed"},
        "Traceback (most recent call last):",  # not every line is JSON
        {"event": "leader lock renew failed", "error": "leadership lost? no"},
        {"event": "leadership lost", "reason": "lock refused the renew"},
    ]
    log.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    assert lock_losses_in(log) == 2


def test_renew_latency_is_read_off_the_controllers_histogram() -> None:
    registry = CollectorRegistry()
    renew = runtime_metrics(registry).leader_renew_time
    assert renew_latency(generate_latest(registry).decode()) == {
        "renewals": 0.0,
        "all_renewals_under_s": None,
    }
    for seconds in (0.003, 0.03, 0.2):
        renew.observe(seconds)
    assert renew_latency(generate_latest(registry).decode()) == {
        "renewals": 3.0,
        "all_renewals_under_s": 0.25,
    }


class ScriptedController:
    """The twin and the controller as the resync phase sees them, one poll at a time: the
    LIST is seen at once, its hand-over (``lists`` + 1) only after ``fill_polls`` polls, and
    the queue then holds ``backlog`` keys, one fewer per poll, each read with a GET."""

    def __init__(self, fill_polls: int, backlog: int) -> None:
        self.fill_polls, self.backlog = fill_polls, backlog
        self.polls = 0
        self.counts = {"GET jobs": 1, "GET job": 0}
        self.status_reads = 0
        self.handed_over_at: int | None = None
        self.drained_at: int | None = None

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return {}

    async def register(self, job: dict[str, Any]) -> dict[str, Any]:
        self.counts["POST job"] = self.counts.get("POST job", 0) + 1  # the trigger job
        self.counts["GET jobs"] += 1  # the stream drops, the controller LISTs again
        return {}

    async def requests(self) -> dict[str, int]:
        return dict(self.counts)

    def without_status_reads(self, calls: dict[str, int], since: int) -> dict[str, int]:
        return calls

    async def controller_status(self, ctl: Any) -> dict[str, Any]:
        self.polls += 1
        handed_over = self.polls > self.fill_polls
        if handed_over and self.handed_over_at is None:
            self.handed_over_at = self.polls
        elif handed_over and self.backlog:
            self.backlog -= 1
            self.counts["GET job"] += 1
            if not self.backlog:
                self.drained_at = self.polls
        depth = self.backlog if handed_over else 0  # before the hand-over: empty, not done
        return {
            "event_stream": {"lists": 1 + int(handed_over)},
            "queue": {"depth": depth, "in_flight": 0, "waiting": 0},
        }

    def usage(self) -> dict[str, float]:
        return {"cpu_s": 0.0}


async def test_the_resync_phase_counts_the_drain_only_after_the_hand_over() -> None:
    fake = ScriptedController(fill_polls=5, backlog=3)
    result = await cp_phases.resync(fake, fake, "bench", 3)  # type: ignore[arg-type]
    assert fake.handed_over_at == 6 and fake.drained_at == 9
    assert fake.polls > fake.drained_at, "it stopped before the hand-over's backlog drained"
    assert result["calls"] == {"GET jobs": 1, "GET job": 3} and result["job_writes"] == 0
