"""Properties of inject/uninject over generated jobs (hypothesis).

Jobs are generated in both Nomad shapes (request: nulls and missing keys; stored: full), with
unknown fields sprinkled in, several groups, group and task services, every check type, host
and bridge networks, static and dynamic ports, and meshed/unmeshed groups.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings

from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection.inject import inject, uninject
from reconcilers.injection.plan import NoOp, NoOpReason, plan_job
from tests.support.builders import canonicalise
from tests.support.fuzzing import examples
from tests.support.strategies import configs, jobs, meshable

OWNED_GROUP_KEYS = {"Networks", "Services", "Tasks", "Meta"}


SETTINGS = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(jobs(), configs)
def test_uninject_inverts_inject(job: dict[str, Any], config: MeshConfig) -> None:
    specs = meshable(job)
    assert uninject(inject(job, specs, config)) == job


@SETTINGS
@given(jobs(), configs)
def test_inject_is_idempotent(job: dict[str, Any], config: MeshConfig) -> None:
    specs = meshable(job)
    once = inject(job, specs, config)
    assert inject(once, parse_job_specs(uninject(once)), config) == once


@SETTINGS
@given(jobs(), configs)
def test_inject_is_deterministic_and_never_mutates(job: dict[str, Any], config: MeshConfig) -> None:
    specs = meshable(job)
    before = json.dumps(job)
    first = inject(job, specs, config)
    second = inject(copy.deepcopy(job), specs, config)
    assert json.dumps(job) == before
    assert json.dumps(first) == json.dumps(second)  # same content AND same key order
    snapshot = json.dumps(first)
    uninject(first)
    assert json.dumps(first) == snapshot


@SETTINGS
@given(jobs(), configs)
def test_unmeshed_groups_and_unknown_fields_are_untouched(
    job: dict[str, Any], config: MeshConfig
) -> None:
    specs = meshable(job)
    out = inject(job, specs, config)
    assert {k: v for k, v in out.items() if k != "TaskGroups"} == {
        k: v for k, v in job.items() if k != "TaskGroups"
    }
    for before, after in zip(job["TaskGroups"], out["TaskGroups"], strict=True):
        if not specs[before["Name"]].enabled:
            assert after == before
            continue
        for key, value in before.items():
            if key not in OWNED_GROUP_KEYS:
                assert after[key] == value
        user_tasks = [t for t in after["Tasks"] if t["Name"] != "mesh-tls-proxy"]
        for task_before, task_after in zip(before["Tasks"], user_tasks, strict=True):
            assert {k: v for k, v in task_after.items() if k != "Services"} == {
                k: v for k, v in task_before.items() if k != "Services"
            }


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs(), configs)
def test_our_write_plans_as_noop_even_after_nomad_canonicalises_it(
    job: dict[str, Any], config: MeshConfig
) -> None:
    specs = meshable(job)
    assume(any(s.enabled for s in specs.values()))
    out = inject(job, specs, config)
    assert plan_job(out, config) == NoOp(NoOpReason.UP_TO_DATE)
    assert plan_job(canonicalise(out), config) == NoOp(NoOpReason.UP_TO_DATE)
