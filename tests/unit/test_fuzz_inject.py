"""Fuzzing the planner and the injection transform with hostile job shapes.

Jobs come from the well-formed generator of test_inject_properties and are then mangled:
fields removed, nulled or of the wrong type, extra fields, hostile meta values (Unicode, 200 kB
strings, numbers, lists), duplicated groups and tasks; plus a job of 200 groups. Every input
must end as a Decision — a valid injected job, a no-op, a removal, or an Invalid whose reason
says what is wrong — never an exception, a hang, a mutated input, or a half-changed job.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection.inject import uninject
from reconcilers.injection.plan import Apply, Invalid, NoOp, NoOpReason, Remove, plan_job
from tests.support.fuzzing import FUZZ, FUZZ_TIMEOUT, mangled
from tests.support.strategies import configs, group, jobs

pytestmark = pytest.mark.timeout(FUZZ_TIMEOUT)
WIDE = settings(FUZZ, max_examples=max(5, FUZZ.max_examples // 20))  # 200 groups each


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def sidecars(group: dict[str, Any]) -> int:
    return sum(1 for t in dicts(group.get("Tasks")) if t.get("Name") == keys.SIDECAR_TASK)


def meta(group: dict[str, Any]) -> dict[str, Any]:
    value = group.get("Meta")
    return value if isinstance(value, dict) else {}


def check_decision(job: dict[str, Any], config: MeshConfig) -> Any:
    before = repr(job)
    decision = plan_job(job, config)
    assert repr(job) == before, "the planner mutated its input"
    assert isinstance(decision, NoOp | Apply | Remove | Invalid)
    if isinstance(decision, Invalid):
        assert decision.reason.strip()
        assert len(decision.reason) < 2000, "an error message must stay readable"
    if isinstance(decision, Apply | Remove):
        out = decision.job
        json.dumps(out, allow_nan=True)  # it can be registered as it is
        assert plan_job(out, config) == NoOp(NoOpReason.UP_TO_DATE) or isinstance(decision, Remove)
        assert uninject(out) == uninject(job), "the user's part of the job changed"
    if isinstance(decision, Apply):
        specs = parse_job_specs(uninject(decision.job))
        for g in dicts(decision.job["TaskGroups"]):
            enabled = specs[str(g.get("Name", ""))].enabled
            marked = keys.INJECTED_GROUP_META in meta(g)
            assert sidecars(g) == int(enabled) and marked == enabled, "half-injected group"
    if isinstance(decision, Remove):
        assert all(sidecars(g) == 0 for g in dicts(decision.job["TaskGroups"]))
    return decision


@FUZZ
@given(st.data(), configs)
def test_mangled_jobs_end_in_a_decision_never_a_crash(data: st.DataObject, config: Any) -> None:
    job = data.draw(mangled(data.draw(jobs())))
    check_decision(job, config)


@FUZZ
@given(st.data(), configs)
def test_mangled_injected_jobs_end_in_a_decision_never_a_crash(
    data: st.DataObject, config: Any
) -> None:
    """The controller's own output, then edited by a user or another tool, comes back to it."""
    job = data.draw(jobs())
    decision = plan_job(job, config)
    if isinstance(decision, Apply):
        job = decision.job
    check_decision(data.draw(mangled(job)), config)


@WIDE
@given(st.data())
def test_two_hundred_groups(data: st.DataObject) -> None:
    one = data.draw(group("g"))
    job = {"ID": "wide", "Meta": {keys.MESH_TLS: "true"}, "TaskGroups": []}
    for i in range(200):
        g = copy.deepcopy(one)
        g["Name"] = f"g{i:03d}"
        job["TaskGroups"].append(g)
    decision = check_decision(job, MeshConfig())
    if isinstance(decision, Apply):
        assert len(decision.job["TaskGroups"]) == 200
