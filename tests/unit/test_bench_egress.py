"""Issue 18's bench row: its arithmetic, its BENCHMARKS.md section and the jobs it renders.

The benchmark itself is never run here and no speed is asserted (speed is `make bench`'s).
"""

from __future__ import annotations

import pytest

from bench import dp_egress
from controller.config.mesh import load_mesh_config
from crds_equivalent import keys
from reconcilers.injection.plan import Apply, plan_job

pytestmark = pytest.mark.timeout(10)


def _s(rps: float, p50: int, p99: int, errors: int = 0) -> dict[str, object]:
    return {"rps": rps, "p50_us": p50, "p99_us": p99, "errors": errors, "percentiles_us": {}}


RESULTS = {
    "direct": {"c1-keepalive": _s(30000, 20, 50), "c32-keepalive": _s(60000, 300, 900)},
    "two-sidecars": {"c1-keepalive": _s(12000, 70, 400), "c32-keepalive": _s(15000, 1500, 9000)},
}


def test_added_p50_and_ratios_per_load() -> None:
    out = dp_egress.added(RESULTS)
    c1, c32 = out["per_load"]["c1-keepalive"], out["per_load"]["c32-keepalive"]
    assert (c1["added_p50_us"], c1["p50_ratio"], c1["rps_ratio"]) == (50, 3.5, 0.4)
    assert (c32["added_p50_us"], c32["p50_ratio"], c32["rps_ratio"]) == (1200, 5.0, 0.25)
    assert dp_egress.summary_line(out) == (
        "two sidecars (mTLS) vs direct: +50 us p50 at c1 (target < 200), +1200 us p50 at c32, "
        "req/s x0.4 at c1, x0.25 at c32"
    )


def test_the_section_judges_the_c1_target() -> None:
    egress = {"rounds": 3, "seconds_per_run": 3, **dp_egress.added(RESULTS)}
    lines = dp_egress.table_lines(egress)
    assert "| c1-keepalive | 30000 | 12000 | 0.4 | 20 | 70 | 50 | 3.5 | 400 | 0 |" in lines
    assert "Target: < 200 us added p50 at c1: +50 us, met." in lines
    slow = {**RESULTS, "two-sidecars": {**RESULTS["two-sidecars"], "c1-keepalive": _s(1, 400, 1)}}
    lines = dp_egress.table_lines({**egress, **dp_egress.added(slow)})
    assert "Target: < 200 us added p50 at c1: +380 us, **not met**." in lines


def test_the_bench_jobs_are_an_allowed_caller_and_its_mtls_server() -> None:
    config = load_mesh_config({"MESH_SIDECAR_DRIVER": "raw_exec"})
    server, client = dp_egress.server_job(), dp_egress.client_job(18080)
    assert isinstance(plan_job(server, config), Apply)
    assert isinstance(plan_job(client, config), Apply)
    meta = client["TaskGroups"][0]["Meta"]
    assert meta[keys.MESH_TLS_UPSTREAMS] == "web:18080"
    assert server["TaskGroups"][0]["Meta"][keys.MESH_TLS_ALLOW] == client["ID"]
