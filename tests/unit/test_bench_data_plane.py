"""The data-plane benchmark's pure parts: CPU per request, its ratio, and the tuning variants.

No benchmark runs here and no speed is asserted; this guards that each tuning variant still
edits the conf the product renders (a variant whose anchor text vanished would silently measure
the template as it is under another name) and that the CPU figures are summarised as intended.
"""

from __future__ import annotations

import pytest

from bench import data_plane, dp_tuning, targets
from reconcilers.injection.nginx import Listener, nginx_conf

pytestmark = pytest.mark.timeout(10)


def _run(rps: float, cpu: float) -> dict[str, object]:
    return {"rps": rps, "p50_us": 10, "p99_us": 20, "errors": 0, "percentiles_us": {},
            "cpu_us_per_req": cpu}  # fmt: skip


@pytest.mark.parametrize("name", [n for n in data_plane.VARIANTS if n != "as-rendered"])
def test_every_tuning_variant_edits_the_rendered_conf(name: str) -> None:
    conf = nginx_conf([Listener("http_tls", "http", namespaced=False)], tcp=False, mtls=False)
    assert data_plane.VARIANTS[name][1](conf) != conf


def test_summaries_carry_cpu_per_request_with_its_spread() -> None:
    s = data_plane.summarize([_run(100, 30.0), _run(300, 10.0), _run(200, 20.0)])
    assert (s["cpu_us_per_req"], s["cpu_spread"]) == (20.0, [10.0, 30.0])
    without = {"rps": 1.0, "p50_us": 1, "p99_us": 1, "errors": 0, "percentiles_us": {}}
    assert "cpu_us_per_req" not in data_plane.summarize([without]), "runs saved before CPU"


def test_cpu_ratio_is_against_the_peer_with_the_most_requests() -> None:
    results = {
        "ours": {"c32-keepalive": data_plane.summarize([_run(900, 20.0)])},
        "stunnel": {"c32-keepalive": data_plane.summarize([_run(1000, 40.0)])},
        "haproxy": {"c32-keepalive": data_plane.summarize([_run(800, 25.0)])},
    }
    out = data_plane.ratios(results)
    assert (out["best_peer"], out["ratio_vs_best_peer"], out["cpu_vs_best_peer"]) == (
        "stunnel",
        0.9,
        0.5,
    )


def test_tuning_table_pairs_each_round_with_the_template_as_rendered() -> None:
    raw = {
        "as-rendered": [_run(100, 20.0), _run(200, 20.0)],
        "x": [_run(150, 18.0), _run(180, 22.0)],
    }
    row = dp_tuning.table(raw)[-1]
    assert row.startswith("| x | 165 [150, 180] | 20.0 [18.0, 22.0] |")
    assert "| 1/2 |" in row  # won one round of two (1.5x, then 0.9x)


def test_the_throughput_target_says_what_a_request_cost_each() -> None:
    dp = {"ratio_vs_best_peer": 0.9, "best_peer": "stunnel", "cpu_vs_best_peer": 0.5,
          "per_load": {"c32-keepalive": {"ours_vs_direct": 0.4}}}  # fmt: skip
    assert targets.throughput_row(dp)[3].endswith("; CPU per request ours/stunnel 0.50")
