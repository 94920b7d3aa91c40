"""Unit tests for register-time canonicalisation (Nomad's defaults and implied constraints)."""

from __future__ import annotations

import json
from typing import Any

from devstack.nomad.canon import canonicalize_job, spec_of
from devstack.nomad.decode import decode_request
from devstack.nomad.schema import STRUCTS
from tests.support import paths

FIXTURES = paths.FIXTURES / "nomad"


def _job(**task_extra: Any) -> dict[str, Any]:
    task = {"Name": "srv", "Driver": "raw_exec", **task_extra}
    return {"ID": "web", "TaskGroups": [{"Name": "app", "Tasks": [task]}]}


def test_every_job_group_and_task_key_present_in_struct_order() -> None:
    job = canonicalize_job(_job(), "default")
    assert list(job) == list(STRUCTS["Job"])
    assert list(job["TaskGroups"][0]) == list(STRUCTS["TaskGroup"])
    assert list(job["TaskGroups"][0]["Tasks"][0]) == list(STRUCTS["Task"])


def test_job_defaults() -> None:
    job = canonicalize_job(_job(), "default")
    assert (job["Region"], job["Type"], job["Priority"], job["Name"]) == (
        "global",
        "service",
        50,
        "web",
    )
    assert job["Datacenters"] == ["*"]
    assert job["NodePool"] == "default"
    assert job["Update"]["Stagger"] == 30 * 10**9
    assert job["Update"]["MaxParallel"] == 1
    group = job["TaskGroups"][0]
    assert group["Count"] == 1
    assert group["Update"]["HealthCheck"] == "checks"
    assert group["RestartPolicy"]["Mode"] == "fail"
    assert group["EphemeralDisk"] == {"Sticky": False, "SizeMB": 300, "Migrate": False}
    task = group["Tasks"][0]
    assert task["KillTimeout"] == 5 * 10**9
    assert task["Resources"]["CPU"] == 100
    assert task["Resources"]["MemoryMB"] == 300


def test_template_defaults_and_signal_constraint() -> None:
    tmpl = {"EmbeddedTmpl": "x", "DestPath": "secrets/a", "ChangeMode": "signal"}
    job = canonicalize_job(_job(Templates=[tmpl, {"DestPath": "local/b"}]), "default")
    group = job["TaskGroups"][0]
    signal, restart = group["Tasks"][0]["Templates"]
    assert signal["ChangeSignal"] == "SIGHUP"
    assert restart["ChangeMode"] == "restart"
    assert restart["ChangeSignal"] == ""
    for t in (signal, restart):
        assert (t["Splay"], t["Perms"], t["LeftDelim"], t["RightDelim"]) == (
            5 * 10**9,
            "0644",
            "{{",
            "}}",
        )
        assert list(t) == list(STRUCTS["Template"])
    assert {
        "LTarget": "${attr.os.signals}",
        "RTarget": "SIGHUP",
        "Operand": "set_contains",
    } in group["Constraints"]


def test_service_defaults_and_port_host_network_with_omitempty() -> None:
    raw = _job()
    group = raw["TaskGroups"][0]
    group["Networks"] = [
        {
            "DynamicPorts": [{"Label": "http", "To": 8080}],
            "ReservedPorts": [{"Label": "lb", "Value": 6539}],
        }
    ]
    group["Services"] = [{"PortLabel": "http", "Checks": [{"Type": "http", "Path": "/"}]}]
    group["Tasks"][0]["Services"] = [{"PortLabel": "http"}]
    job = canonicalize_job(raw, "default")
    group = job["TaskGroups"][0]
    assert group["Networks"] == [
        {
            "ReservedPorts": [{"Label": "lb", "Value": 6539, "HostNetwork": "default"}],
            "DynamicPorts": [{"Label": "http", "To": 8080, "HostNetwork": "default"}],
        }
    ]
    svc = group["Services"][0]
    assert (svc["Name"], svc["Provider"], svc["AddressMode"], svc["OnUpdate"], svc["Cluster"]) == (
        "web-app",
        "consul",
        "auto",
        "require_healthy",
        "default",
    )
    assert svc["Checks"][0]["Name"] == 'service: "web-app" check'
    assert group["Tasks"][0]["Services"][0]["Name"] == "web-app-srv"


def test_vault_policies_dropped_and_constraint_added() -> None:
    job = canonicalize_job(_job(Vault={"Policies": ["p"]}), "default")
    vault = job["TaskGroups"][0]["Tasks"][0]["Vault"]
    assert "Policies" not in vault
    assert vault["ChangeMode"] == "restart"
    assert vault["Env"] is True
    assert {"LTarget": "${attr.vault.version}", "RTarget": ">= 0.6.1", "Operand": "semver"} in job[
        "TaskGroups"
    ][0]["Constraints"]


def test_spec_comparison_ignores_status_and_indexes() -> None:
    a = canonicalize_job(_job(), "default")
    b = {
        **canonicalize_job(_job(), "default"),
        "Status": "running",
        "Version": 3,
        "JobModifyIndex": 9,
        "ModifyIndex": 12,
        "SubmitTime": 5,
    }
    assert spec_of(a) == spec_of(b)
    c = canonicalize_job(_job(Env={"A": "1"}), "default")
    assert spec_of(a) != spec_of(c)


def test_real_payloads_canonicalise() -> None:
    for name in ("register-example-short.json", "register-batch-parameterized.json"):
        body = decode_request("JobRegisterRequest", (FIXTURES / name).read_bytes())
        job = canonicalize_job(body["Job"], "default")
        assert list(job) == list(STRUCTS["Job"])
        json.dumps(job)
