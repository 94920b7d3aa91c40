"""Properties of inject/uninject over generated jobs whose ports live in tasks' resources.

The shapes real jobs use (Nomad < 0.12 style, still accepted): ports declared in a task's
``Resources.Networks`` (static and dynamic, host mode), group or task services on them, the
group with no network, a null one, an empty list, or a host network of its own beside them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection import jobview
from reconcilers.injection.inject import inject, uninject
from reconcilers.injection.nginx import env_label
from reconcilers.injection.plan import NoOp, NoOpReason, plan_job
from tests.support.builders import canonicalise
from tests.support.strategies import (
    MESH_META,
    NAMES,
    _maybe,
    configs,
    meshable,
    service,
    unknown_fields,
)

TASK_LABELS = ["http", "db", "rpc", "api.v1"]
GROUP_LABELS = ["admin", "metrics"]


@st.composite
def task_network(draw: st.DrawFn, labels: list[str], first_static: int) -> dict[str, Any]:
    static = draw(st.lists(st.sampled_from(labels), unique=True, max_size=1))
    network: dict[str, Any] = {}
    _maybe(draw, network, "Mode", draw(st.sampled_from(["", "host"])))
    network["ReservedPorts"] = [
        {"Label": lb, "Value": first_static + i} for i, lb in enumerate(static)
    ] or draw(st.sampled_from([None, []]))
    network["DynamicPorts"] = [{"Label": lb} for lb in labels if lb not in static] or None
    network.update(draw(unknown_fields))
    return network


@st.composite
def group(draw: st.DrawFn, name: str) -> dict[str, Any]:
    task_names = draw(st.lists(NAMES, min_size=1, max_size=2, unique=True))
    # Each label is declared by one task only (two would be ambiguous, and refused).
    owned = draw(st.lists(st.sampled_from(TASK_LABELS), min_size=1, max_size=3, unique=True))
    split = draw(st.integers(0, len(owned)))
    per_task = [owned[:split], owned[split:]] if len(task_names) == 2 else [owned]
    tasks = []
    for index, task_name in enumerate(task_names):
        labels = per_task[index]
        task: dict[str, Any] = {
            "Name": task_name,
            "Driver": draw(st.sampled_from(["docker", "exec"])),
        }
        resources: dict[str, Any] = {"CPU": 100, "MemoryMB": 64}
        if labels:
            resources["Networks"] = [draw(task_network(labels, 20000 + 10 * index))]
        task["Resources"] = resources
        _maybe(draw, task, "Services", draw(st.lists(service(labels or owned), max_size=2)))
        task.update(draw(unknown_fields))
        tasks.append(task)
    g: dict[str, Any] = {"Name": name, "Count": 1, "Tasks": tasks}
    shape = draw(st.sampled_from(["absent", "null", "empty", "host"]))
    if shape == "null":
        g["Networks"] = None
    elif shape == "empty":
        g["Networks"] = []
    elif shape == "host":
        g["Networks"] = [{"Mode": "host", "DynamicPorts": [{"Label": GROUP_LABELS[0]}]}]
    if draw(st.booleans()):
        g["Services"] = [{**draw(service(owned)), "PortLabel": owned[0]}]
    _maybe(draw, g, "Meta", draw(st.none() | MESH_META))
    g.update(draw(unknown_fields))
    return g


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=2, unique=True))
    job: dict[str, Any] = {"ID": draw(NAMES), "Name": None, "Type": "service"}
    job["Meta"] = draw(MESH_META)
    job["TaskGroups"] = [draw(group(n)) for n in names]
    return job


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(jobs(), configs)
def test_round_trip_and_idempotence(job: dict[str, Any], config: MeshConfig) -> None:
    specs = meshable(job)
    once = inject(job, specs, config)
    assert uninject(once) == job
    assert inject(once, parse_job_specs(uninject(once)), config) == once


@SETTINGS
@given(jobs(), configs)
def test_our_write_plans_as_noop_even_after_nomad_canonicalises_it(
    job: dict[str, Any], config: MeshConfig
) -> None:
    specs = meshable(job)
    assume(any(s.enabled for s in specs.values()))
    out = inject(job, specs, config)
    assert plan_job(out, config) == NoOp(NoOpReason.UP_TO_DATE)
    assert plan_job(canonicalise(out), config) == NoOp(NoOpReason.UP_TO_DATE)


@SETTINGS
@given(jobs(), configs)
def test_tls_ports_join_the_group_network_and_the_sidecar_reaches_the_owning_task(
    job: dict[str, Any], config: MeshConfig
) -> None:
    specs = meshable(job)
    out = inject(job, specs, config)
    for before, after in zip(job["TaskGroups"], out["TaskGroups"], strict=True):
        spec = specs[before["Name"]]
        if not spec.enabled:
            assert after == before
            continue
        first = after["Networks"][0]
        group_tls = {p["Label"] for p in first.get("DynamicPorts") or []}
        owners = {v.label: v.task for v in jobview.task_ports(before)}
        conf = json.dumps(after["Tasks"][-1]["Templates"])
        for label in spec.ports:
            assert keys.tls_port_label(label) in group_tls
            task = owners[label]
            assert f"NOMAD_ADDR_{env_label(task or '')}_{env_label(label)}" in conf
        # The user's task networks are never edited: the TLS port is the group's.
        for task_before, task_after in zip(before["Tasks"], after["Tasks"], strict=False):
            assert task_after.get("Resources") == task_before.get("Resources")
