"""Jobs as people write them: task-level ports, Consul Connect groups, and refusals that say
what to do. Fixtures are our own, in the shapes of the public jobs in realworld-jobs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from devstack.nomad.taskenv import task_env
from devstack.nomad.warnings import TASK_NETWORKS_DEPRECATED, job_warnings
from reconcilers.injection import jobview
from reconcilers.injection.inject import inject, uninject
from reconcilers.injection.plan import Apply, Invalid, NoOp, NoOpReason, plan_job
from tests.support.golden_jobs import JOBS, run_render

CONFIG = MeshConfig()


def fixture(case: str) -> dict[str, Any]:
    job: dict[str, Any] = json.loads((JOBS / f"{case}.in.json").read_text())["Job"]
    return job


def task_port_job(**task_extra: Any) -> dict[str, Any]:
    """A 2017-style service job: the port lives in the task's resources, no group network."""
    task: dict[str, Any] = {
        "Name": "cache",
        "Driver": "docker",
        "Config": {"image": "redis:7"},
        "Services": [
            {
                "Name": "cache-redis",
                "PortLabel": "db",
                "Checks": [{"Name": "alive", "Type": "tcp", "Interval": 10_000_000_000}],
            }
        ],
        "Resources": {
            "CPU": 500,
            "MemoryMB": 256,
            "Networks": [{"DynamicPorts": [{"Label": "db"}]}],
        },
    }
    task.update(task_extra)
    return {
        "ID": "cache",
        "Name": "cache",
        "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [{"Name": "cache", "Count": 1, "Tasks": [task]}],
    }


def applied(job: dict[str, Any]) -> dict[str, Any]:
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Apply), decision
    return decision.job


# --- task-level ports -------------------------------------------------------------------------


def test_a_service_on_a_task_port_is_fronted_from_a_new_host_group_network() -> None:
    job = task_port_job()
    out = applied(job)
    group = out["TaskGroups"][0]
    assert group["Networks"] == [
        {
            "Mode": "host",
            "DynamicPorts": [{"Label": "mesh_tls_db", "Value": 0, "To": 0, "HostNetwork": ""}],
        }
    ]
    service = group["Tasks"][0]["Services"][0]
    assert service["PortLabel"] == "mesh_tls_db"
    assert service["Checks"][0]["Type"] == "tcp"
    # The user's task network is untouched; only the group's gains the TLS port.
    assert group["Tasks"][0]["Resources"] == job["TaskGroups"][0]["Tasks"][0]["Resources"]
    conf = group["Tasks"][-1]["Templates"][-1]["EmbeddedTmpl"]
    assert 'server {{ env "NOMAD_ADDR_cache_db" }};' in conf
    assert 'listen {{ env "NOMAD_ADDR_mesh_tls_db" }} ssl;' in conf
    assert uninject(out) == job
    assert plan_job(out, CONFIG) == NoOp(NoOpReason.UP_TO_DATE)


def test_a_group_service_on_a_task_port_is_fronted_too() -> None:
    job = task_port_job(Services=None)
    job["TaskGroups"][0]["Services"] = [{"Name": "cache-redis", "PortLabel": "db"}]
    out = applied(job)
    assert out["TaskGroups"][0]["Services"][0]["PortLabel"] == "mesh_tls_db"
    assert uninject(out) == job


def test_mesh_tls_ports_may_name_a_task_port() -> None:
    job = task_port_job()
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["Networks"][0]["ReservedPorts"] = [
        {"Label": "rpc", "Value": 25566}
    ]
    job["Meta"][keys.MESH_TLS_PORTS] = "rpc"
    specs = parse_job_specs(job)
    assert specs["cache"].ports == ("rpc",)
    out = applied(job)
    labels = [p["Label"] for p in out["TaskGroups"][0]["Networks"][0]["DynamicPorts"]]
    assert labels == ["mesh_tls_rpc"]


def test_an_unknown_label_lists_task_ports_among_the_known_ones() -> None:
    job = task_port_job()
    job["Meta"][keys.MESH_TLS_PORTS] = "nope"
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Invalid)
    assert 'unknown label "nope"; known: db' in decision.reason


def test_a_dotted_task_or_label_keeps_its_dot_in_the_env_name_as_cleanenvvar_does() -> None:
    job = task_port_job(Name="cache.v2")
    out = applied(job)
    conf = out["TaskGroups"][0]["Tasks"][-1]["Templates"][-1]["EmbeddedTmpl"]
    assert '{{ env "NOMAD_ADDR_cache.v2_db" }}' in conf


def test_the_hash_ignores_nomads_canonical_form_of_the_task_network() -> None:
    out = applied(task_port_job())
    stored = copy.deepcopy(out)
    network = stored["TaskGroups"][0]["Tasks"][0]["Resources"]["Networks"][0]
    network.update(Mode="host", IP="", MBits=0, ReservedPorts=None)
    network["DynamicPorts"][0].update(Value=0, To=0, HostNetwork="default")
    assert plan_job(stored, CONFIG) == NoOp(NoOpReason.UP_TO_DATE)


def test_a_change_to_the_task_port_re_injects() -> None:
    out = applied(task_port_job())
    edited = copy.deepcopy(out)
    edited["TaskGroups"][0]["Tasks"][0]["Resources"]["Networks"][0]["DynamicPorts"] = None
    edited["TaskGroups"][0]["Tasks"][0]["Resources"]["Networks"][0]["ReservedPorts"] = [
        {"Label": "db", "Value": 6379}
    ]
    assert isinstance(plan_job(edited, CONFIG), Apply)


def test_group_port_jobs_hash_as_before() -> None:
    """No injector version bump: an existing meshed job must not roll because of this change."""
    case = "example-short-meshed-host-docker"
    out = json.loads((JOBS / f"{case}.out.json").read_text())["Job"]
    assert plan_job(out, CONFIG) == NoOp(NoOpReason.UP_TO_DATE)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda g: g["Tasks"].append(
                {
                    "Name": "shadow",
                    "Driver": "raw_exec",
                    "Resources": {"Networks": [{"DynamicPorts": [{"Label": "db"}]}]},
                }
            ),
            'group "cache": port label "db" is declared by tasks cache, shadow; the mesh cannot '
            "tell which one to front: rename one of them",
        ),
        (
            lambda g: g.__setitem__("Networks", [{"Mode": "bridge"}]),
            'group "cache": port "db" is declared in task "cache"\'s resources, but the group '
            "network is in a namespaced (bridge/CNI) mode; declare the port in the group "
            "network instead",
        ),
        (
            lambda g: g["Tasks"][0]["Resources"]["Networks"][0].__setitem__(
                "DynamicPorts", [{"Label": "mesh_tls_db"}]
            ),
            'group "cache": port label "mesh_tls_db" uses the prefix "mesh_tls_" reserved',
        ),
    ],
)
def test_task_port_shapes_the_mesh_refuses(mutate: Any, expected: str) -> None:
    job = task_port_job()
    mutate(job["TaskGroups"][0])
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Invalid), decision
    assert decision.reason.startswith(expected)


def test_a_static_port_reserved_by_two_tasks_is_refused_naming_the_conflict() -> None:
    job = task_port_job()
    tasks = job["TaskGroups"][0]["Tasks"]
    tasks[0]["Resources"]["Networks"] = [{"ReservedPorts": [{"Label": "db", "Value": 5822}]}]
    tasks.append(copy.deepcopy(tasks[0]) | {"Name": "proxy"})
    decision = plan_job(job, CONFIG)
    assert decision == Invalid(
        'group "cache": static port 5822 is reserved twice, by task cache (port "db") and by '
        'task proxy (port "db"); Nomad refuses such a group ("Static port 5822 already '
        'reserved"): give one of them another port or make it dynamic'
    )


# --- Consul Connect -----------------------------------------------------------------------------


def test_a_connect_group_is_refused_while_its_sibling_is_meshed() -> None:
    job = fixture("connect-group-beside-meshed-group")
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Apply)
    api, web = decision.job["TaskGroups"]
    assert api == job["TaskGroups"][0]
    assert any(jobview.is_managed_sidecar(t) for t in web["Tasks"])
    assert decision.refused == (
        'group "api": uses Consul Connect (service "checkout-api" has connect.sidecar_service); '
        "its traffic is already mTLS through Envoy, so the mesh leaves it alone: remove the "
        'Connect block, or remove "mesh.tls" from this group (group meta "mesh.tls" = "false")',
    )
    # Once applied, the refusal stays visible on the no-op too.
    again = plan_job(decision.job, CONFIG)
    assert again == NoOp(NoOpReason.UP_TO_DATE, decision.refused)


@pytest.mark.parametrize(
    ("mutate", "what"),
    [
        (
            lambda g: g["Services"][0].__setitem__("Connect", {"Native": True}),
            'service "checkout-api" is Connect native',
        ),
        (
            lambda g: g["Services"][0].__setitem__("Connect", {"Gateway": {"Ingress": {}}}),
            'service "checkout-api" is a Connect gateway',
        ),
        (
            lambda g: (
                g["Services"][0].__setitem__("Connect", None),
                g["Tasks"].append(
                    {"Name": "envoy", "Kind": "connect-proxy:checkout-api", "Driver": "docker"}
                ),
            ),
            'task "envoy" is of kind "connect-proxy:checkout-api"',
        ),
        (
            lambda g: (
                g["Services"][0].__setitem__("Connect", None),
                g["Tasks"].append({"Name": "connect-proxy-checkout-api", "Driver": "docker"}),
            ),
            'task "connect-proxy-checkout-api" is a Connect (Envoy) sidecar',
        ),
    ],
)
def test_every_connect_shape_is_recognised(mutate: Any, what: str) -> None:
    job = fixture("connect-group-beside-meshed-group")
    job["TaskGroups"] = job["TaskGroups"][:1]
    mutate(job["TaskGroups"][0])
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Invalid)
    assert decision.reason.startswith(f'group "api": uses Consul Connect ({what}); ')


def test_a_previously_meshed_group_that_adopts_connect_is_given_back() -> None:
    job = fixture("connect-group-beside-meshed-group")
    plain = copy.deepcopy(job)
    plain["TaskGroups"][0]["Services"][0]["Connect"] = None
    plain["TaskGroups"][0]["Networks"] = [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}]
    plain["TaskGroups"][0]["Services"][0]["PortLabel"] = "http"
    meshed = applied(plain)
    # A task survives uninject (only services and networks come back from the undo record).
    meshed["TaskGroups"][0]["Tasks"].insert(
        1, {"Name": "connect-proxy-web", "Kind": "connect-proxy:web", "Driver": "docker"}
    )
    decision = plan_job(meshed, CONFIG)
    assert isinstance(decision, Apply)
    assert not inject_marked(decision.job["TaskGroups"][0])
    assert inject_marked(decision.job["TaskGroups"][1])
    assert len(decision.refused) == 1


def inject_marked(group: dict[str, Any]) -> bool:
    return keys.INJECTED_GROUP_META in (group.get("Meta") or {})


# --- refusals name the group and say what to do ---------------------------------------------


REFUSALS = {
    "batch job without services": (
        {
            "ID": "nightly",
            "Type": "batch",
            "Meta": {"mesh.tls": "true"},
            "TaskGroups": [{"Name": "etl", "Tasks": [{"Name": "run", "Driver": "docker"}]}],
        },
        'group "etl": is meshed but has no port to front: the group registers no service (in '
        "this batch job), and the mesh fronts services on ports; add a service with a port to "
        'the group, or set meta "mesh.tls.ports", or remove "mesh.tls" from this group (group '
        'meta "mesh.tls" = "false")',
    ),
    "service without a port": (
        {
            "ID": "w",
            "Meta": {"mesh.tls": "true"},
            "TaskGroups": [
                {
                    "Name": "worker",
                    "Tasks": [{"Name": "w", "Driver": "docker", "Services": [{"Name": "worker"}]}],
                }
            ],
        },
        'group "worker": is meshed but has no port to front: no service uses a port '
        '(services: "worker"); give a service a port label declared in the group network or '
        'its task\'s resources, or set meta "mesh.tls.ports", or remove "mesh.tls" from this '
        'group (group meta "mesh.tls" = "false")',
    ),
    "port in driver address mode": (
        task_port_job(
            Services=[{"Name": "cache-redis", "PortLabel": "db", "AddressMode": "driver"}]
        ),
        'group "cache": service "cache-redis" uses address_mode "driver"; the TLS port belongs '
        "to the sidecar, not to the app's driver: set the service's address_mode to \"auto\" "
        'or "host", or remove "mesh.tls" from this group (group meta "mesh.tls" = "false")',
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_render_exits_1_with_a_reason_that_names_the_group_and_what_to_do(
    case: str, tmp_path: Path
) -> None:
    job, reason = REFUSALS[case]
    assert plan_job(job, CONFIG) == Invalid(reason)
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"Job": job}))
    result = run_render([str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"controllerctl render: {path}: invalid mesh spec: {reason}\n"


def test_render_meshes_the_sibling_and_names_the_refused_connect_group(tmp_path: Path) -> None:
    job = fixture("connect-group-beside-meshed-group")
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"Job": job}))
    result = run_render([str(path)])
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Apply)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"Job": decision.job}
    assert result.stderr == f"controllerctl render: {path}: not meshed: {decision.refused[0]}\n"


def test_inject_of_a_task_port_fixture_matches_render() -> None:
    job = fixture("task-port-exec-static")
    out = json.loads((JOBS / "task-port-exec-static.out.json").read_text())["Job"]
    config = MeshConfig(sidecar_driver="exec")
    assert inject(job, parse_job_specs(job), config) == out


# --- the Nomad twin: task-level network env and the register warning ---------------------------


def _alloc_with_task_networks() -> dict[str, Any]:
    job = applied(task_port_job())
    return {
        "ID": "0f1e2d3c-0000-0000-0000-000000000000",
        "Name": "cache.cache[0]",
        "Namespace": "default",
        "TaskGroup": "cache",
        "Job": {**job, "Region": "global", "ParentID": "", "Namespace": "default"},
        "AllocatedResources": {
            "Tasks": {
                "cache": {
                    "Networks": [
                        {
                            "Mode": "host",
                            "IP": "127.0.0.11",
                            "DynamicPorts": [{"Label": "db", "Value": 24001}],
                        }
                    ]
                },
                keys.SIDECAR_TASK: {"Networks": None},
            },
            "Shared": {"Ports": [{"Label": "mesh_tls_db", "Value": 25002, "HostIP": "127.0.0.11"}]},
        },
    }


def test_twin_env_gives_other_tasks_the_task_prefixed_address(tmp_path: Path) -> None:
    """client/taskenv/env.go: Builder.setAlloc -> addPort for OTHER tasks' networks."""
    alloc = _alloc_with_task_networks()
    group = alloc["Job"]["TaskGroups"][0]
    sidecar = next(t for t in group["Tasks"] if t["Name"] == keys.SIDECAR_TASK)
    env = task_env(alloc, sidecar, tmp_path)
    assert env["NOMAD_ADDR_cache_db"] == "127.0.0.11:24001"
    assert env["NOMAD_IP_cache_db"] == "127.0.0.11"
    assert env["NOMAD_PORT_cache_db"] == "24001"
    assert "NOMAD_ADDR_db" not in env  # a task port is not the sidecar's own
    assert env["NOMAD_ADDR_mesh_tls_db"] == "127.0.0.11:25002"


def test_twin_env_gives_the_owning_task_its_own_port_vars(tmp_path: Path) -> None:
    """client/taskenv/env.go: buildNetworkEnv/buildPortEnv for the task's own networks."""
    alloc = _alloc_with_task_networks()
    app = alloc["Job"]["TaskGroups"][0]["Tasks"][0]
    env = task_env(alloc, app, tmp_path)
    assert env["NOMAD_ADDR_db"] == "127.0.0.11:24001"
    assert env["NOMAD_PORT_db"] == "24001"
    assert env["NOMAD_HOST_PORT_db"] == "24001"
    assert env["NOMAD_IP_db"] == env["NOMAD_IPv4_db"] == "127.0.0.11"
    assert "NOMAD_ADDR_cache_db" not in env


def test_twin_env_keeps_dots_in_names_as_cleanenvvar_does(tmp_path: Path) -> None:
    alloc = _alloc_with_task_networks()
    alloc["AllocatedResources"]["Shared"]["Ports"][0]["Label"] = "api.v1"
    app = alloc["Job"]["TaskGroups"][0]["Tasks"][0]
    assert task_env(alloc, app, tmp_path)["NOMAD_ADDR_api.v1"] == "127.0.0.11:25002"


def test_twin_register_warning_is_nomads_text() -> None:
    job = task_port_job()
    assert job_warnings(job) == (
        "1 warning:\n\n"
        '* Group "cache" has warnings: 1 error occurred:\n'
        '\t* Task "cache" has warnings: 1 error occurred:\n'
        f"\t* {TASK_NETWORKS_DEPRECATED}"
    )
    two = copy.deepcopy(job)
    two["TaskGroups"].append(copy.deepcopy(job["TaskGroups"][0]) | {"Name": "b"})
    assert job_warnings(two).startswith('2 warnings:\n\n* Group "cache" has warnings: ')
    no_networks = copy.deepcopy(job)
    no_networks["TaskGroups"][0]["Tasks"][0]["Resources"]["Networks"] = None
    assert job_warnings(no_networks) == ""
