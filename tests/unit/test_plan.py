"""The planner's decision table: NoOp | Apply | Remove | Invalid, from the job alone."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec, SpecError, parse_job_specs
from reconcilers.injection.hashing import INJECTOR_VERSION, hash_inputs
from reconcilers.injection.inject import inject, is_marked, uninject
from reconcilers.injection.plan import Apply, Invalid, NoOp, NoOpReason, Remove, plan, plan_job
from tests.support.golden_jobs import JOBS

CONFIG = MeshConfig()


def job(meta: dict[str, str] | None = None, *groups: dict[str, Any]) -> dict[str, Any]:
    return {
        "ID": "shop",
        "Namespace": "default",
        "Meta": meta,
        "TaskGroups": list(groups) or [group("web")],
    }


def group(name: str, meta: dict[str, str] | None = None, service: str = "shop") -> dict[str, Any]:
    return {
        "Name": name,
        "Networks": [{"Mode": "bridge", "DynamicPorts": [{"Label": "http", "To": 8080}]}],
        "Services": [{"Name": service, "PortLabel": "http", "Provider": "consul"}],
        "Tasks": [{"Name": "app", "Driver": "docker"}],
        "Meta": meta,
    }


MESHED = job({"mesh.tls": "true"})


def injected(j: dict[str, Any] = MESHED, config: MeshConfig = CONFIG) -> dict[str, Any]:
    decision = plan_job(j, config)
    assert isinstance(decision, Apply)
    return decision.job


# --- the happy paths -----------------------------------------------------------------------------


def test_unmeshed_job_is_a_noop() -> None:
    assert plan_job(job(), CONFIG) == NoOp(NoOpReason.NOT_MESHED)
    assert plan_job(job({"mesh.tls": "false", "mesh.tls.mode": "bogus"}), CONFIG) == NoOp(
        NoOpReason.NOT_MESHED
    )


def test_meshed_job_is_applied_with_markers() -> None:
    decision = plan_job(MESHED, CONFIG)
    assert isinstance(decision, Apply)
    assert "web" in decision.reason
    assert is_marked(decision.job["TaskGroups"][0])
    assert uninject(decision.job) == MESHED


def test_our_own_write_plans_as_a_noop() -> None:
    assert plan_job(injected(), CONFIG) == NoOp(NoOpReason.UP_TO_DATE)


def test_stopped_jobs_are_left_alone() -> None:
    stopped = {**MESHED, "Stop": True}
    assert plan_job(stopped, CONFIG) == NoOp(NoOpReason.STOPPED)
    assert plan_job({**injected(), "Stop": True}, CONFIG) == NoOp(NoOpReason.STOPPED)


def test_removing_the_flag_removes_the_injection() -> None:
    current = injected()
    current["Meta"] = {"mesh.tls": "false"}
    decision = plan_job(current, CONFIG)
    assert isinstance(decision, Remove)
    assert decision.job == {**MESHED, "Meta": {"mesh.tls": "false"}}
    assert not any(is_marked(g) for g in decision.job["TaskGroups"])


def test_changed_spec_or_config_re_injects() -> None:
    current = injected()
    current["Meta"] = {"mesh.tls": "true", "mesh.tls.mode": "permissive"}
    decision = plan_job(current, CONFIG)
    assert isinstance(decision, Apply)
    assert len(decision.job["TaskGroups"][0]["Services"]) == 2
    new_config = MeshConfig(sidecar_image="nginx:1.28-alpine")
    decision = plan_job(injected(), new_config)
    assert isinstance(decision, Apply)
    assert plan_job(decision.job, new_config) == NoOp(NoOpReason.UP_TO_DATE)


@pytest.mark.parametrize(
    "damage",
    [
        lambda g: g["Tasks"].pop(),  # the sidecar deleted by hand
        lambda g: g["Networks"][0]["DynamicPorts"].pop(),  # the TLS port deleted
        lambda g: g["Meta"].__setitem__(keys.INJECTED_GROUP_META, "1:0000000000000000"),
    ],
)
def test_damaged_injection_is_repaired(damage: Callable[[dict[str, Any]], object]) -> None:
    current = injected()
    damage(current["TaskGroups"][0])
    decision = plan_job(current, CONFIG)
    assert isinstance(decision, Apply)
    assert plan_job(decision.job, CONFIG) == NoOp(NoOpReason.UP_TO_DATE)


def test_one_group_unflagged_while_another_stays_meshed() -> None:
    two = job({"mesh.tls": "true"}, group("a", service="a"), group("b", service="b"))
    current = injected(two)
    current["TaskGroups"][1]["Meta"]["mesh.tls"] = "false"
    decision = plan_job(current, CONFIG)
    assert isinstance(decision, Apply)
    assert "b" in decision.reason
    assert is_marked(decision.job["TaskGroups"][0])
    assert not is_marked(decision.job["TaskGroups"][1])


def test_same_service_in_two_groups_with_the_same_shape_is_fine() -> None:
    two = job({"mesh.tls": "true"}, group("a"), group("b"))
    assert isinstance(plan_job(two, CONFIG), Apply)


# --- Invalid --------------------------------------------------------------------------------------


def _with(mutate: Callable[[dict[str, Any]], object], meta: dict[str, str] | None = None) -> Any:
    j = job(meta or {"mesh.tls": "true"})
    mutate(j["TaskGroups"][0])
    return j


def _with_mtls_check(*paths: str) -> dict[str, Any]:
    """An mTLS group whose service has one http check per path."""
    j = job({"mesh.tls": "true", "mesh.tls.mtls": "true"})
    checks = [{"Type": "http", "Path": path} for path in paths]
    j["TaskGroups"][0]["Services"][0]["Checks"] = checks
    return j


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "bad meta value": (
        job({"mesh.tls": "true", "mesh.tls.mode": "STRICT"}),
        'group "web": meta "mesh.tls.mode" = "STRICT": expected one of strict, permissive',
    ),
    "unknown port label": (
        job({"mesh.tls": "true", "mesh.tls.ports": "nope"}),
        'unknown label "nope"',
    ),
    "no port to front": (
        _with(lambda g: g.__setitem__("Services", None)),
        'group "web": is meshed but has no port to front',
    ),
    "reserved task name": (
        _with(lambda g: g["Tasks"].append({"Name": keys.SIDECAR_TASK, "Driver": "docker"})),
        f'group "web": task name "{keys.SIDECAR_TASK}" is reserved',
    ),
    "reserved port prefix": (
        _with(lambda g: g["Networks"][0]["DynamicPorts"].append({"Label": "mesh_tls_x"})),
        'group "web": port label "mesh_tls_x" uses the prefix',
    ),
    "two providers in one group": (
        _with(
            lambda g: g["Services"].append(
                {"Name": "shop-admin", "PortLabel": "http", "Provider": "nomad"}
            )
        ),
        'group "web": its services use more than one provider: "consul" (service "shop"), '
        '"nomad" (service "shop-admin"); Nomad refuses such a group',
    ),
    "driver address mode": (
        _with(lambda g: g["Services"][0].__setitem__("AddressMode", "driver")),
        'service "shop" uses address_mode "driver"',
    ),
    "runtime-only service name": (
        _with(lambda g: g["Services"][0].__setitem__("Name", "shop-${NOMAD_META_color}")),
        "only known at run time",
    ),
    "mtls check path nginx would normalise": (
        _with_mtls_check("/x/../health"),
        """group "web": http check path '/x/../health' cannot be matched exactly""",
    ),
    "mtls check path with a percent-escape": (
        _with_mtls_check("/a%20b"),
        "no percent-escapes",
    ),
    "mtls check path that would break out of the nginx string": (
        _with_mtls_check('/h";deny'),
        "cannot be matched exactly by the mTLS sidecar",
    ),
    "mtls check without a path": (
        _with_mtls_check(""),
        'group "web": an http check has no Path',
    ),
    "mtls checks on one path with two queries": (
        _with_mtls_check("/h?a=1", "/h?a=2"),
        "differ only in their query",
    ),
    "conflicting groups": (
        job(
            {"mesh.tls": "true"},
            group("a"),
            group("b", meta={"mesh.tls.protocol": "tcp"}),
        ),
        'group "b": service "shop" is also fronted by group "a" with different settings',
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_jobs_are_not_touched(case: str) -> None:
    j, expected = INVALID[case]
    before = copy.deepcopy(j)
    decision = plan_job(j, CONFIG)
    assert isinstance(decision, Invalid), decision
    assert expected in decision.reason
    assert j == before


def test_reserved_names_in_unmeshed_groups_are_not_our_business() -> None:
    j = job({"mesh.tls": "false"})
    j["TaskGroups"][0]["Tasks"].append({"Name": keys.SIDECAR_TASK})
    assert plan_job(j, CONFIG) == NoOp(NoOpReason.NOT_MESHED)


def test_the_api_docs_syntax_job_with_a_nomad_provider_is_meshed_in_nomads_catalog() -> None:
    """The JSON-jobs syntax example registers its service with provider "nomad": fronted the
    same way, the TLS registration keeps the provider, so it lands in Nomad's own catalog."""
    doc = json.loads((JOBS / "syntax-bridge-group-service.in.json").read_text())
    j = doc["Job"]
    j["TaskGroups"][0]["Services"][0]["Provider"] = "nomad"
    decision = plan_job(j, CONFIG)
    assert isinstance(decision, Apply)
    (service,) = decision.job["TaskGroups"][0]["Services"]
    assert service["Provider"] == "nomad"
    assert service["PortLabel"].startswith(keys.TLS_PORT_PREFIX)


def test_corrupt_undo_record_is_invalid() -> None:
    current = injected()
    current["TaskGroups"][0]["Meta"][keys.UNDO_GROUP_META] = "{"
    decision = plan_job(current, CONFIG)
    assert decision == Invalid('group "web": undo record is not JSON')


def test_plan_accepts_a_spec_error_from_the_caller() -> None:
    error = SpecError("web", "mesh.tls", "yes", "a boolean")
    assert plan(MESHED, error, CONFIG) == Invalid(str(error))


def test_plan_with_explicit_specs_naming_an_undeclared_label() -> None:
    specs = {"web": MeshSpec(group="web", enabled=True, ports=("http", "ghost"))}
    decision = plan(MESHED, specs, CONFIG)
    assert isinstance(decision, Invalid)
    assert "ghost" in decision.reason


def test_plan_and_plan_job_agree() -> None:
    current = injected()
    assert plan(current, parse_job_specs(uninject(current)), CONFIG) == plan_job(current, CONFIG)
    assert plan(MESHED, parse_job_specs(MESHED), CONFIG) == plan_job(MESHED, CONFIG)
    assert inject(MESHED, parse_job_specs(MESHED), CONFIG) == injected()


# Found by the fuzz tests (tests/unit/test_fuzz_inject.py): a job with two groups of one name
# was injected, planned again as Apply (never settling) or crashed with KeyError: ''.


def test_duplicate_group_names_are_invalid_not_injected() -> None:
    twice = job({keys.MESH_TLS: "true"}, group("web"), group("web"))
    decision = plan_job(twice, CONFIG)
    assert decision == Invalid('group "web" is defined twice: task group names must be unique')


def test_duplicate_task_names_in_a_meshed_group_are_invalid() -> None:
    g = group("web")
    g["Tasks"].append(copy.deepcopy(g["Tasks"][0]))
    decision = plan_job(job({keys.MESH_TLS: "true"}, g), CONFIG)
    assert isinstance(decision, Invalid)
    assert decision.reason.startswith('group "web": task "')
    assert "is defined twice: task names must be unique in a group" in decision.reason


def test_a_huge_meta_value_gives_a_short_reason_that_still_names_the_key() -> None:
    # Found by the fuzz tests: a 200 kB `mesh.tls.ports` came back whole in the reason, which
    # is written to the job's status Variable.
    decision = plan_job(job({keys.MESH_TLS: "true", keys.MESH_TLS_PORTS: "1" * 200_000}), CONFIG)
    assert isinstance(decision, Invalid)
    assert f'meta "{keys.MESH_TLS_PORTS}"' in decision.reason
    assert len(decision.reason) <= 1001


@pytest.mark.parametrize("name", [None, "", [], 7])
def test_a_group_without_a_string_name_is_invalid(name: Any) -> None:
    # Found by make chaos's fuzz run: a meshed group named [] planned as Apply but was left
    # without its sidecar (the spec and the injection spelled the name differently).
    g = group("web")
    g["Name"] = name
    decision = plan_job(job({keys.MESH_TLS: "true"}, g), CONFIG)
    assert isinstance(decision, Invalid)
    assert decision.reason.startswith("a task group has Name ")
    assert decision.reason.endswith("expected a non-empty string")


def test_only_an_mtls_http_group_with_http_checks_gets_a_new_hash() -> None:
    """The open check locations changed the output of exactly these groups, so only their
    marker changes: every other meshed job keeps its hash and is not rolled."""
    with_check = job({"mesh.tls": "true"})
    with_check["TaskGroups"][0]["Services"][0]["Checks"] = [{"Type": "http", "Path": "/h"}]
    plain = injected(with_check)["TaskGroups"][0]["Meta"][keys.INJECTED_GROUP_META]
    mtls_no_check = injected(job({"mesh.tls": "true", "mesh.tls.mtls": "true"}))
    mtls_check = injected(_with_mtls_check("/h"))
    mtls_tcp = job({"mesh.tls": "true", "mesh.tls.mtls": "true", "mesh.tls.protocol": "tcp"})
    mtls_tcp["TaskGroups"][0]["Services"][0]["Checks"] = [{"Type": "http", "Path": "/x/../h"}]

    def conf(j: dict[str, Any]) -> str:
        templates = j["TaskGroups"][0]["Tasks"][-1]["Templates"]
        return str(templates[-1]["EmbeddedTmpl"])

    assert "ssl_verify_client optional" not in conf(mtls_no_check)
    assert "ssl_verify_client optional" not in conf(injected(mtls_tcp)), "stream: no locations"
    assert 'location = "/h"' in conf(mtls_check)
    for j in (with_check, job({"mesh.tls": "true", "mesh.tls.mtls": "true"}), mtls_tcp):
        spec = parse_job_specs(j)["web"]
        document = hash_inputs(spec, CONFIG, j, j["TaskGroups"][0])
        assert "mtls_checks" not in document
    spec = parse_job_specs(_with_mtls_check("/h"))["web"]
    user = _with_mtls_check("/h")
    assert hash_inputs(spec, CONFIG, user, user["TaskGroups"][0])["mtls_checks"] == "1"
    assert plain.startswith(INJECTOR_VERSION + ":")
    # The job we wrote plans NoOp: the marker is stable across our own write.
    assert plan_job(mtls_check, CONFIG) == NoOp(NoOpReason.UP_TO_DATE)
    assert uninject(mtls_check) == _with_mtls_check("/h")
