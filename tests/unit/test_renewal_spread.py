"""Leaves issued together must not renew together.

Nomad renews a ``pkiCert`` at exactly 90 % of its lifetime (consul-template's jitter term is
always zero), so the only spread comes from the per-job TTL jitter the injection applies. These
tests issue many jobs' leaves at the same instant and look at when the renewals would land.
"""

from __future__ import annotations

from collections import Counter

from crds_equivalent.spec import parse_job_specs
from reconcilers.injection.hashing import MAX_TTL_JITTER, effective_ttl, jittered_ttl

RENEW_AT = 0.90  # consul-template's LeaseRenewalThreshold inside Nomad
TTL = 72 * 3600


def renewals(ttl: int, keys: list[tuple[str, str]]) -> list[float]:
    return [RENEW_AT * jittered_ttl(ttl, ns, job) for ns, job in keys]


def test_leaves_issued_at_once_renew_spread_over_the_jitter_window() -> None:
    keys = [("default", f"svc-{i}") for i in range(500)]
    times = renewals(TTL, keys)
    window = RENEW_AT * TTL * MAX_TTL_JITTER  # 3.24 h for 72 h leaves
    assert max(times) - min(times) > 0.9 * window
    per_minute = Counter(int(t // 60) for t in times)
    assert max(per_minute.values()) <= 12  # uniform would be ~2.6 a minute
    assert all(RENEW_AT * TTL * (1 - MAX_TTL_JITTER) < t <= RENEW_AT * TTL for t in times)


def test_the_same_job_name_in_many_namespaces_spreads_too() -> None:
    times = renewals(TTL, [(f"team-{i}", "api") for i in range(300)])
    assert len({int(t // 60) for t in times}) > 100


def test_jitter_is_a_pure_function_of_namespace_and_job() -> None:
    first = renewals(TTL, [("default", "web"), ("prod", "web"), ("default", "api")])
    again = renewals(TTL, [("default", "web"), ("prod", "web"), ("default", "api")])
    assert first == again
    assert len(set(first)) == 3


def test_the_injected_ttl_is_the_jittered_one_for_that_job() -> None:
    def job(namespace: str, job_id: str) -> dict[str, object]:
        return {
            "ID": job_id,
            "Namespace": namespace,
            "Meta": {"mesh.tls": "true", "mesh.tls.ttl": "24h"},
            "TaskGroups": [{"Name": "g", "Services": [{"Name": "s", "PortLabel": "http"}]}],
        }

    for ns, job_id in (("default", "web"), ("prod", "web")):
        j = job(ns, job_id)
        spec = parse_job_specs(j)["g"]
        assert effective_ttl(spec, j) == jittered_ttl(24 * 3600, ns, job_id)
    assert effective_ttl(parse_job_specs(job("a", "x"))["g"], job("a", "x")) != effective_ttl(
        parse_job_specs(job("b", "x"))["g"], job("b", "x")
    )
