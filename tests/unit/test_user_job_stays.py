"""The user's job stays the user's through a real Nomad: implied constraints, VersionTag, children.

The jobs here are shaped as Nomad stores them, not as we send them: ``stored`` applies what
nomad v1.10.0 does on every register (``nomad/job_endpoint_hooks.go``
``jobImpliedConstraints.Mutate`` with its left and full matchers,
``nomad/job_endpoint_hook_implicit_identities.go`` appending the identity constraint without
dedupe, ``ApiJobToStructJob`` copying ``VersionTag``), and children are derived as
``nomad/periodic.go`` ``deriveJob`` and ``nomad/job_endpoint.go`` ``Job.Dispatch`` derive them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection import jobview
from reconcilers.injection.implied import is_sidecar_implied
from reconcilers.injection.inject import spec_hash, uninject
from reconcilers.injection.plan import (
    Apply,
    NoOp,
    NoOpReason,
    Remove,
    default_ttl_seconds,
    plan_job,
)
from reconcilers.injection.sidecar import SidecarSpec, sidecar_task
from tests.support.builders import canonicalise

CONFIG = MeshConfig()
VAULT = {"LTarget": "${attr.vault.version}", "RTarget": ">= 0.6.1", "Operand": "semver"}
IDENTITY = {"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.7.0-a", "Operand": "semver"}
LINUX = {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}
TAG = {"Name": "golden", "Description": "the release we trust", "TaggedTime": 1_700_000_000}


def signals(*names: str) -> dict[str, str]:
    return {
        "LTarget": "${attr.os.signals}",
        "RTarget": ",".join(sorted(names)),
        "Operand": "set_contains",
    }


def user_job(*constraints: dict[str, str], **extra: Any) -> dict[str, Any]:
    group: dict[str, Any] = {
        "Name": "web",
        "Count": 1,
        "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
        "Services": [{"Name": "web", "PortLabel": "http", "Provider": "consul"}],
        "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "app"}}],
        "Constraints": [dict(c) for c in constraints] or None,
        "Meta": None,
    }
    return {
        "ID": "web",
        "Name": "web",
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [group],
        **extra,
    }


def _add(group: dict[str, Any], constraint: dict[str, str], *, left: bool) -> None:
    existing = group.get("Constraints") or []
    if left:
        found = any(c["LTarget"] == constraint["LTarget"] for c in existing)
    else:
        found = constraint in existing
    if not found:
        group["Constraints"] = [*existing, dict(constraint)]


def stored(sent: dict[str, Any], *, workload_identity: bool = True) -> dict[str, Any]:
    """The job as Nomad v1.10 stores ``sent`` (the hooks named in the module docstring)."""
    job: dict[str, Any] = canonicalise(copy.deepcopy(sent))
    for group in job["TaskGroups"]:
        tasks = group.get("Tasks") or []
        if any(t.get("Vault") for t in tasks):
            _add(group, VAULT, left=True)
        required: set[str] = set()
        for task in tasks:
            vault = task.get("Vault") or {}
            if vault.get("ChangeMode") == "signal":
                required.add(vault["ChangeSignal"])
            if task.get("KillSignal"):
                required.add(task["KillSignal"])
            for template in task.get("Templates") or []:
                if template.get("ChangeMode") == "signal":
                    required.add(template["ChangeSignal"])
        if required:
            _add(group, signals(*required), left=False)
        if workload_identity and any(t.get("Vault") or t.get("Identities") for t in tasks):
            group["Constraints"] = [*(group.get("Constraints") or []), dict(IDENTITY)]
    job["VersionTag"] = copy.deepcopy(sent.get("VersionTag"))
    return job


def applied(job: dict[str, Any]) -> dict[str, Any]:
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Apply), decision
    return decision.job


def constraints(job: dict[str, Any]) -> list[dict[str, str]] | None:
    value: list[dict[str, str]] | None = jobview.groups(job)[0].get("Constraints")
    return value


def unflag(job: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(job)
    out["Meta"] = {"mesh.tls": "false"}
    return out


def rotate(job: dict[str, Any], nonce: str) -> dict[str, Any]:
    """What the certs reconciler does to force a re-issue: a new nonce in group meta."""
    out = copy.deepcopy(job)
    meta = dict(out["TaskGroups"][0].get("Meta") or {})
    meta[keys.ROTATION_GROUP_META] = nonce
    out["TaskGroups"][0]["Meta"] = meta
    return out


def test_the_sidecar_implies_exactly_the_shapes_uninject_takes_back() -> None:
    """The signal shape is tied to what the sidecar really carries, not to a copied list."""
    spec = SidecarSpec(
        listeners=(),
        tcp=False,
        mtls=False,
        common_name="web.mesh",
        alt_names=(),
        ip_labels=(),
        ttl_seconds=3600,
        rotation="",
    )
    task = sidecar_task(spec, CONFIG)
    group = {"Name": "web", "Tasks": [task], "Constraints": None}
    implied = stored({"ID": "x", "TaskGroups": [group]})["TaskGroups"][0]["Constraints"]
    assert implied == [VAULT, signals("SIGHUP", "SIGQUIT"), IDENTITY]
    assert all(is_sidecar_implied(c) for c in implied)
    assert not is_sidecar_implied(LINUX)
    assert not is_sidecar_implied({**VAULT, "RTarget": ">= 1.15.0"})
    assert not is_sidecar_implied(signals("SIGUSR1"))


def test_removing_the_flag_takes_back_what_nomad_implied_and_only_that() -> None:
    user = stored(user_job(LINUX), workload_identity=False)
    injected = stored(applied(user))
    assert constraints(injected) == [LINUX, VAULT, signals("SIGHUP", "SIGQUIT"), IDENTITY]

    decision = plan_job(unflag(injected), CONFIG)
    assert isinstance(decision, Remove)
    assert constraints(decision.job) == [LINUX]
    after = stored(decision.job)
    assert constraints(after) == [LINUX]  # the un-meshed job no longer needs Vault or signals


def test_a_job_without_constraints_gets_its_null_back() -> None:
    user = stored(user_job(), workload_identity=False)
    assert constraints(user) is None
    decision = plan_job(unflag(stored(applied(user))), CONFIG)
    assert isinstance(decision, Remove)
    assert constraints(decision.job) is None


def test_what_the_users_own_tasks_implied_before_the_mesh_stays() -> None:
    """The user's task has a Vault block and a signal of its own: Nomad implied a Vault
    constraint and a SIGUSR1 constraint before we came; both stay after removal."""
    job = user_job()
    job["TaskGroups"][0]["Tasks"][0].update(
        Vault={"Role": "app", "ChangeMode": "signal", "ChangeSignal": "SIGUSR1"}
    )
    user = stored(job)
    before = constraints(user)
    assert before == [VAULT, signals("SIGUSR1"), IDENTITY]
    injected = stored(applied(user))
    # Vault is left-matched (already there); the group's signals now include the sidecar's.
    assert constraints(injected) == [*before, signals("SIGHUP", "SIGQUIT", "SIGUSR1"), IDENTITY]

    decision = plan_job(unflag(injected), CONFIG)
    assert isinstance(decision, Remove)
    assert constraints(decision.job) == before


def test_constraints_the_user_adds_to_the_injected_job_stay() -> None:
    user = stored(user_job(), workload_identity=False)
    injected = stored(applied(user))
    mine = {**VAULT, "RTarget": ">= 1.15.0"}
    edited = copy.deepcopy(injected)
    edited["TaskGroups"][0]["Constraints"] += [LINUX, mine]
    decision = plan_job(unflag(edited), CONFIG)
    assert isinstance(decision, Remove)
    assert constraints(decision.job) == [LINUX, mine]


@pytest.mark.parametrize("workload_identity", [True, False])
def test_repeated_writes_do_not_grow_the_implicit_constraints(workload_identity: bool) -> None:
    user = stored(user_job(LINUX), workload_identity=workload_identity)
    current = stored(applied(user), workload_identity=workload_identity)
    first = constraints(current)
    for n in range(5):  # five certificate re-issues, each a controller write
        current = stored(applied(rotate(current, f"n{n}")), workload_identity=workload_identity)
        assert constraints(current) == first
    assert first is not None and first.count(IDENTITY) == (1 if workload_identity else 0)


def test_an_undo_record_from_before_this_field_drops_nothing() -> None:
    """Without the pre-injection constraints the controller cannot tell ours from the
    user's, so it keeps them all (the next Apply records the field)."""
    injected = stored(applied(stored(user_job(LINUX), workload_identity=False)))
    meta = injected["TaskGroups"][0]["Meta"]
    record = meta[keys.UNDO_GROUP_META]
    assert '"constraints":[' in record
    legacy = record[: record.index(',"constraints":')] + "}"
    meta[keys.UNDO_GROUP_META] = legacy
    assert constraints(uninject(injected)) == constraints(injected)


def test_controller_writes_never_carry_the_users_version_tag() -> None:
    user = stored(user_job(VersionTag=TAG))
    assert user["VersionTag"] == TAG
    write = applied(user)
    assert "VersionTag" not in write
    assert stored(write)["VersionTag"] is None  # our version is untagged; the user's keeps it

    again = applied(rotate(stored(write), "n1"))
    assert "VersionTag" not in again
    tagged_injected = {**stored(write), "VersionTag": TAG}  # the user tagged our version
    decision = plan_job(unflag(tagged_injected), CONFIG)
    assert isinstance(decision, Remove)
    assert "VersionTag" not in decision.job


def periodic_parent() -> dict[str, Any]:
    job = user_job(
        Type="batch", Periodic={"Enabled": True, "Spec": "0 0 1 1 *", "SpecType": "cron"}
    )
    return stored(applied(stored(job)))


def periodic_child(parent: dict[str, Any], launch: int) -> dict[str, Any]:
    """``PeriodicDispatch.deriveJob``: a copy with ParentID, a new ID, Name = ID, no Periodic."""
    child = copy.deepcopy(parent)
    child.update(
        ParentID=parent["ID"],
        ID=f"{parent['ID']}/periodic-{launch}",
        Name=f"{parent['ID']}/periodic-{launch}",
        Periodic=None,
    )
    return child


def dispatched_child(parent: dict[str, Any]) -> dict[str, Any]:
    """``Job.Dispatch``: a copy with ParentID, Dispatched, the dispatch meta merged in."""
    child = copy.deepcopy(parent)
    child_id = f"{parent['ID']}/dispatch-1700000000-0123abcd"
    child.update(ParentID=parent["ID"], ID=child_id, Name=child_id, Dispatched=True)
    child["Meta"] = {**child["Meta"], "who": "me"}
    return child


def test_a_periodic_parent_meshes_like_any_job_and_its_children_are_never_planned() -> None:
    parent = periodic_parent()
    assert plan_job(parent, CONFIG) == NoOp(NoOpReason.UP_TO_DATE)
    for launch in range(1_700_000_000, 1_700_000_005):
        child = periodic_child(parent, launch)
        assert plan_job(child, CONFIG) == NoOp(NoOpReason.CHILD)
        # Why the rule is needed: the hash covers the job's identity, which a child does not
        # share with its parent, so a hash comparison alone would re-register every child.
        user = uninject(child)
        group = jobview.groups(user)[0]
        marker = jobview.group_meta(jobview.groups(child)[0])[keys.INJECTED_GROUP_META]
        specs = parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(CONFIG))
        assert spec_hash(specs["web"], CONFIG, user, group) != marker


def test_a_parameterized_parent_meshes_like_any_job_and_its_dispatches_are_never_planned() -> None:
    job = user_job(Type="batch", ParameterizedJob={"Payload": "optional", "MetaOptional": ["who"]})
    parent = stored(applied(stored(job)))
    assert plan_job(parent, CONFIG) == NoOp(NoOpReason.UP_TO_DATE)
    child = dispatched_child(parent)
    assert plan_job(child, CONFIG) == NoOp(NoOpReason.CHILD)
    assert plan_job(unflag(child), CONFIG) == NoOp(NoOpReason.CHILD)  # not even a Remove
