"""helm-less-deploy/: the job file and policies parse, the generated files are fresh, and the
conversion to Nomad API JSON does what `nomad job run -output` would do for our file."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2
import pytest
from deploytools.hcl2json import HclError, convert

from controller.consul.client import ConsulClient
from controller.ctl.probes_consul import reads
from controller.deploy.install import packaged_job_file
from controller.deploy.policies import (
    consul_policy,
    nomad_policy,
    policy_files,
    vault_controller_policy,
    vault_workload_policy,
)
from controller.vault.bootstrap import PkiLayout
from controller.vault.policies import controller_policy, workload_policy

DEPLOY = Path(__file__).resolve().parents[2] / "helm-less-deploy"


def load_gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("helm_less_deploy_gen", DEPLOY / "gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = load_gen()


def job_for(**overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = json.loads(gen.job_json(overrides))["Job"]
    return job


def only_task(job: dict[str, Any]) -> dict[str, Any]:
    (group,) = job["TaskGroups"]
    (task,) = group["Tasks"]
    return dict(task)


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.hcl")), ids=lambda p: p.name)
def test_every_hcl_file_parses_with_python_hcl2(path: Path) -> None:
    parsed = hcl2.loads(path.read_text())
    assert parsed, f"{path.name} parsed to nothing"


def test_generated_files_are_fresh() -> None:
    stale = gen.stale_files()
    assert stale == [], f"stale: {stale}; run: .venv/bin/python helm-less-deploy/gen.py"


def test_the_packaged_job_is_the_committed_job() -> None:
    """`controllerctl install` registers the package-data copy; operators read the other."""
    packaged = packaged_job_file().read_text()
    assert packaged == (DEPLOY / "mesh-controller.nomad.json").read_text()
    assert json.loads(packaged)["Job"]["Type"] == "system"


def test_vault_policy_files_are_the_bootstrap_policies_byte_for_byte() -> None:
    paths = PkiLayout().policy_paths()
    files = DEPLOY / "policies"
    assert (files / "vault-mesh-controller.hcl").read_text() == controller_policy(paths)
    assert (files / "vault-mesh-workload.hcl").read_text() == workload_policy(paths)
    assert vault_controller_policy() == controller_policy(paths)
    assert vault_workload_policy() == workload_policy(paths)


def test_policy_files_are_the_rendered_defaults() -> None:
    for name, text in policy_files().items():
        assert (DEPLOY / "policies" / name).read_text() == text


def test_default_job_is_a_system_job_with_checks_and_no_secrets() -> None:
    job = job_for()
    assert (job["ID"], job["Type"], job["Datacenters"]) == ("mesh-controller", "system", ["*"])
    assert job["Update"]["MaxParallel"] == 1
    assert job["Update"]["MinHealthyTime"] == 10 * 10**9  # durations in nanoseconds
    group = job["TaskGroups"][0]
    assert group["RestartPolicy"]["Delay"] == 10 * 10**9
    assert group["Networks"][0]["DynamicPorts"][0]["Label"] == "http"
    (service,) = group["Services"]
    checks = {c["Name"]: c for c in service["Checks"]}
    assert {c["Path"] for c in checks.values()} == {"/healthz", "/readyz"}
    assert checks["healthz"]["CheckRestart"]["Limit"] == 3
    assert service["PortLabel"] == "http" and all(c["Type"] == "http" for c in checks.values())
    task = only_task(job)
    assert task["Env"]["MESH_HTTP_ADDR"] == "${NOMAD_ADDR_http}"
    assert task["Env"]["MESH_HTTP_ALLOW_PUBLIC"] == "true"
    (template,) = task["Templates"]
    assert template["Envvars"] is True
    assert 'nomadVar "nomad/jobs/mesh-controller"' in template["EmbeddedTmpl"]
    assert template["EmbeddedTmpl"].endswith("\n")
    # The controller's Vault token comes from the job's vault block (Nomad writes and renews
    # secrets/vault_token), the other tokens from the Variable: none is in the job.
    assert task["Vault"] == {"Role": "mesh-controller", "ChangeMode": "noop", "Env": False}
    assert task["Env"]["VAULT_TOKEN_FILE"] == "${NOMAD_SECRETS_DIR}/vault_token"
    text = json.dumps(job).upper().replace("VAULT_TOKEN_FILE", "").replace("/VAULT_TOKEN", "")
    assert "TOKEN" not in text


def test_driver_variable_switches_the_task_config() -> None:
    docker = only_task(job_for())
    assert docker["Driver"] == "docker"
    assert docker["Config"] == {
        "image": "nomad-tls-mesh:0.1.0",
        "network_mode": "host",
        "args": ["run"],
    }
    raw = only_task(job_for(driver="raw_exec", command="/opt/mesh/bin/controller"))
    assert raw["Driver"] == "raw_exec"
    assert raw["Config"] == {"command": "/opt/mesh/bin/controller", "args": ["run"]}


def test_version_datacenters_and_namespace_variables() -> None:
    job = job_for(version="1.4.2", datacenters=["dc1", "dc2"], namespace="platform")
    assert job["Meta"] == {"version": "1.4.2"}
    assert job["Datacenters"] == ["dc1", "dc2"]
    assert job["Namespace"] == "platform"
    assert only_task(job)["Config"]["image"] == "nomad-tls-mesh:1.4.2"


def test_unknown_variable_is_refused() -> None:
    with pytest.raises(HclError, match="no such variable"):
        job_for(drivr="raw_exec")


def parse(text: str) -> dict[str, Any]:
    return dict(gen.parse_hcl(text))


def test_unknown_blocks_and_attributes_are_errors_not_dropped() -> None:
    base = (
        'job "j" {\n  type = "system"\n  group "g" {\n    task "t" {\n'
        '      driver = "raw_exec"\n%s    }\n  }\n}\n'
    )
    with pytest.raises(HclError, match="artifact"):
        convert(parse(base % '      artifact {\n        source = "x"\n      }\n'))
    with pytest.raises(HclError, match="policies"):  # the legacy vault workflow is refused
        convert(parse(base % '      vault {\n        policies = ["x"]\n      }\n'))
    with pytest.raises(HclError, match="frobnicate"):
        convert(parse(base % "      frobnicate = 1\n"))
    with pytest.raises(HclError, match="exactly one job"):
        convert(parse('variable "x" {\n  default = 1\n}\n'))


def test_variable_without_default_needs_a_value() -> None:
    text = 'variable "v" {\n  type = string\n}\njob "j" {\n  type = var.v\n}\n'
    with pytest.raises(HclError, match="without a value"):
        convert(parse(text))
    assert convert(parse(text), {"v": "batch"})["Job"]["Type"] == "batch"


def test_static_ports_are_reserved_and_null_attributes_vanish() -> None:
    text = (
        'job "j" {\n  group "g" {\n    network {\n      port "a" {\n        static = 8080\n'
        '      }\n      port "b" {\n        to = 80\n      }\n    }\n'
        '    task "t" {\n      driver = "docker"\n      user = null\n'
        '      config {\n        image = "x"\n        command = null\n      }\n    }\n  }\n}\n'
    )
    job = convert(parse(text))["Job"]
    net = job["TaskGroups"][0]["Networks"][0]
    assert net["ReservedPorts"] == [
        {"Label": "a", "Value": 8080, "To": 0, "HostNetwork": "default"}
    ]
    assert net["DynamicPorts"] == [{"Label": "b", "Value": 0, "To": 80, "HostNetwork": "default"}]
    task = job["TaskGroups"][0]["Tasks"][0]
    assert "User" not in task
    assert task["Config"] == {"image": "x"}


def test_nomad_policy_least_privilege_for_named_namespaces() -> None:
    text = nomad_policy(watched=("web", "api"), controller_namespace="platform")
    rules = hcl2.loads(text)
    spaces = {
        name.strip('"'): body
        for block in rules["namespace"]
        for name, body in block.items()
        if not name.startswith("__")
    }
    caps = {name: {c.strip('"') for c in body["capabilities"]} for name, body in spaces.items()}
    assert caps["*"] == {"list-jobs", "read-job"}
    writable = {"list-jobs", "read-job", "submit-job", "alloc-lifecycle", "csi-mount-volume"}
    assert caps["web"] == caps["api"] == writable
    assert caps["platform"] == {"list-jobs", "read-job"}
    # Register checks volume rights on every re-register: global, mount rights only
    ((name, host),) = [(k, v) for k, v in rules["host_volume"][0].items() if k != "__is_block__"]
    assert (name, host["capabilities"]) == ('"*"', ['"mount-readwrite"'])
    assert rules["plugin"][0]["policy"] == '"read"'
    assert "variables" in spaces["platform"] and "variables" not in spaces["*"]
    assert 'path "mesh-controller/*"' in text
    assert "nomad/jobs" not in text.replace("(not nomad/jobs/*)", "")


def test_consul_policy_is_read_only() -> None:
    rules = hcl2.loads(consul_policy())
    granted = {}
    for kind in (k for k in rules if not k.startswith("__")):
        ((prefix, body),) = [(k, v) for k, v in rules[kind][0].items() if not k.startswith("__")]
        granted[kind] = (prefix, body["policy"])
    # What an instance needs to be seen at all (service AND node read), and nothing else: the
    # controller calls no /v1/agent endpoint, so no agent read.
    assert granted == {"service_prefix": ('""', '"read"'), "node_prefix": ('""', '"read"')}
    assert "write" not in consul_policy()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", ["1", "2"])
def test_gen_check_passes_whatever_the_hash_seed(seed: str) -> None:
    """The JSON must not depend on set/dict hashing: `gen.py --check` in fresh interpreters."""
    done = subprocess.run(
        [sys.executable, str(DEPLOY / "gen.py"), "--check"],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_asks_for_exactly_the_consul_rules_the_shipped_policy_grants() -> None:
    """`controllerctl check`'s hints quote rules; each must parse to a block of the policy file
    the install ships, and together they must be the whole policy."""
    shipped = hcl2.loads((DEPLOY / "policies" / "consul-mesh-controller.hcl").read_text())
    asked: dict[str, object] = {}
    for row in reads(ConsulClient()):
        for rule in row.missing.split(" and "):
            asked |= hcl2.loads(rule)
    assert asked == {k: v for k, v in shipped.items() if not k.startswith("__")}
