"""RolledOut says why a sidecar is not running yet (found by `make chaos` scenario 4: with
OpenBao sealed the status only said "0/1 allocations ... run the sidecar")."""

from __future__ import annotations

from typing import Any

from crds_equivalent import keys
from reconcilers.mesh.rollout import SAYS_LIMIT, rolled_out

JOB: dict[str, Any] = {
    "ID": "late",
    "Type": "service",
    "Version": 1,
    "TaskGroups": [
        {
            "Name": "late",
            "Count": 1,
            "Tasks": [
                {"Name": "app"},
                {"Name": keys.SIDECAR_TASK, "Meta": {keys.MANAGED_TASK_META: "true"}},
            ],
        }
    ],
}


def alloc(version: int, sidecar_state: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "JobVersion": version,
        "TaskGroup": "late",
        "DesiredStatus": "run",
        "ClientStatus": "pending",
        "TaskStates": {keys.SIDECAR_TASK: {"State": sidecar_state, "Events": events}},
    }


def test_a_waiting_sidecar_names_its_latest_task_event() -> None:
    missing = "Missing: vault.pki(pki_int/issue/mesh->secrets/mesh-tls.pem)"
    events = [
        {"Type": "Received", "DisplayMessage": "Task received by client", "Time": 1},
        {"Type": "Template", "DisplayMessage": missing, "Time": 3},
        {"Type": "Task Setup", "DisplayMessage": "Building Task Directory", "Time": 2},
    ]
    cond = rolled_out(JOB, None, [alloc(1, "pending", events)])
    assert cond.status == "False"
    assert cond.message == f"0/1 allocations of version 1 run the sidecar; sidecar: {missing}"


def test_the_event_that_failed_the_task_outranks_nomads_restated_verdict() -> None:
    # Workload identity: a sealed Vault fails the login, Nomad kills the task (FailsTask), and
    # the health hook then adds "Alloc Unhealthy" events that only restate the verdict.
    login = "Vault: failed to derive vault token: failed to login with JWT: Vault is sealed"
    events = [
        {"Type": "Killing", "DisplayMessage": login, "FailsTask": True, "Time": 2},
        {"Type": "Killed", "DisplayMessage": "Task successfully killed", "Time": 3},
        {
            "Type": "Alloc Unhealthy",
            "DisplayMessage": "Unhealthy because of failed task",
            "Time": 4,
        },
    ]
    cond = rolled_out(JOB, None, [alloc(1, "dead", events)])
    assert cond.message.endswith(f"sidecar: {login}")


def test_older_versions_and_running_sidecars_say_nothing() -> None:
    old = alloc(0, "pending", [{"DisplayMessage": "old news", "Time": 9}])
    cond = rolled_out(JOB, None, [old])
    assert cond.message == "0/1 allocations of version 1 run the sidecar"


def test_long_event_text_is_cut() -> None:
    cond = rolled_out(JOB, None, [alloc(1, "pending", [{"Message": "x" * 1000, "Time": 1}])])
    assert cond.message.endswith("x" * SAYS_LIMIT + "…")


def test_malformed_task_states_are_ignored() -> None:
    broken = {"JobVersion": 1, "DesiredStatus": "run", "TaskStates": {keys.SIDECAR_TASK: None}}
    events_not_list = alloc(1, "pending", [])
    events_not_list["TaskStates"][keys.SIDECAR_TASK]["Events"] = {"Type": "x"}
    cond = rolled_out(JOB, None, [broken, events_not_list, {"JobVersion": 1, "TaskStates": 3}])
    assert cond.message == "0/1 allocations of version 1 run the sidecar"
