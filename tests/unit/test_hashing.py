"""The marker hash: inputs only, stable under Nomad's canonicalisation; the TTL jitter."""

from __future__ import annotations

from typing import Any

from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec, parse_job_specs
from reconcilers.injection import hashing
from reconcilers.injection.hashing import (
    CONFIG_FIELDS_NOT_HASHED,
    INJECTION_CONFIG_FIELDS,
    MAX_TTL_JITTER,
    jittered_ttl,
    spec_hash,
)
from reconcilers.injection.plan import NoOp, NoOpReason, plan_job
from tests.support.builders import DOCKER, canonicalise, job, meshed


def test_ttl_jitter_is_deterministic_bounded_and_spread() -> None:
    ttl = 72 * 3600
    values = {jittered_ttl(ttl, "default", f"job-{i}") for i in range(200)}
    assert all(ttl * (1 - MAX_TTL_JITTER) < v <= ttl for v in values)
    assert len(values) > 150
    assert jittered_ttl(ttl, "a", "b") == jittered_ttl(ttl, "a", "b")
    assert jittered_ttl(ttl, "a", "b") != jittered_ttl(ttl, "b", "b")


def test_hash_survives_nomad_canonicalising_our_output() -> None:
    j = job(meta={"mesh.tls.mode": "permissive"})
    j["Namespace"] = None
    stored = canonicalise(meshed(j))
    assert stored != meshed(j)
    assert plan_job(stored, DOCKER) == NoOp(NoOpReason.UP_TO_DATE)


def _hash(j: dict[str, Any], config: MeshConfig = DOCKER) -> str:
    spec: MeshSpec = parse_job_specs(j)["web"]
    return spec_hash(spec, config, j, j["TaskGroups"][0])


def test_hash_changes_with_every_input() -> None:
    base = _hash(job())
    changed_service = job()
    changed_service["TaskGroups"][0]["Services"][0]["Tags"] = ["v2"]
    changed_port = job()
    changed_port["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["To"] = 9090
    changed_id = job()
    changed_id["ID"] = "web2"
    variants = [
        _hash(changed_service),
        _hash(changed_port),
        _hash(changed_id),
        _hash(job(meta={"mesh.tls.mode": "permissive"})),
        _hash(job(meta={"mesh.tls.ttl": "48h"})),
        _hash(job(), MeshConfig(sidecar_image="nginx:1.28-alpine")),
        _hash(job("host")),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_every_config_field_is_either_hashed_or_known_to_be_unread() -> None:
    fields = set(MeshConfig.model_fields)
    assert fields == set(INJECTION_CONFIG_FIELDS) | set(CONFIG_FIELDS_NOT_HASHED)
    assert not set(INJECTION_CONFIG_FIELDS) & set(CONFIG_FIELDS_NOT_HASHED)
    assert _hash(job(), MeshConfig(root_mount="other-root")) == _hash(job())


def test_hash_ignores_groups_fields_injection_does_not_read() -> None:
    other = job()
    other["TaskGroups"][0]["Count"] = 5
    other["TaskGroups"][0]["Tasks"][0]["Config"] = {"image": "app:2"}
    assert _hash(other) == _hash(job())


def test_the_memoised_hash_parts_equal_what_they_memoise_and_are_bounded() -> None:
    spec = parse_job_specs(job(meta={"mesh.tls.sans": "a.example.com"}))["web"]
    assert hashing._spec_document(spec) == spec.model_dump(
        mode="json", exclude={"upstreams", "allow"}
    )
    assert hashing._config_document(DOCKER) == DOCKER.model_dump(
        mode="json", include=set(INJECTION_CONFIG_FIELDS)
    )
    for args in (("default", "web"), ("a", "b"), ("default", "web")):
        assert hashing.ttl_jitter_fraction(*args) == hashing.ttl_jitter_fraction.__wrapped__(*args)
    assert hashing.ttl_jitter_fraction.cache_info().maxsize == hashing.JITTER_MEMO_SIZE
    assert hashing._spec_document.cache_info().maxsize == hashing.DOCUMENT_MEMO_SIZE
    assert hashing._config_document.cache_info().maxsize is not None


def test_a_caller_changing_its_hash_document_cannot_change_the_next_hash() -> None:
    j = job()
    spec = parse_job_specs(j)["web"]
    before = spec_hash(spec, DOCKER, j, j["TaskGroups"][0])
    document = hashing.hash_inputs(spec, DOCKER, j, j["TaskGroups"][0])
    document["spec"]["mode"] = "permissive"
    document["config"]["domain"] = "elsewhere"
    assert spec_hash(spec, DOCKER, j, j["TaskGroups"][0]) == before


def test_equal_specs_share_one_memo_entry_and_hash_alike() -> None:
    first = parse_job_specs(job())["web"]
    second = parse_job_specs(job())["web"]
    assert first is not second
    assert hashing._spec_document(first) is hashing._spec_document(second)
    assert _hash(job()) == _hash(job())
