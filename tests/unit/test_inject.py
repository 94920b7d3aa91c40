"""inject/uninject: golden in/out fixtures, what each part of a group becomes, and the hash."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig, SidecarDriver
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection import nginx
from reconcilers.injection.hashing import (
    jittered_ttl,
)
from reconcilers.injection.inject import (
    INJECTOR_VERSION,
    CannotInject,
    UndoError,
    inject,
    spec_hash,
    uninject,
)
from tests.support.builders import DOCKER, RAW, job, meshed
from tests.support.golden_jobs import JOBS, cases, render_case, run_render

# --- golden fixtures -----------------------------------------------------------------------------


def test_there_are_enough_golden_cases() -> None:
    assert len(cases()) >= 8
    assert {"example-short-meshed-host-docker", "batch-parameterized-unmeshed"} <= set(cases())


@pytest.mark.parametrize("case", cases())
def test_golden_output_is_exact(case: str) -> None:
    result = render_case(case)
    assert result.exit_code == 0, result.output
    assert result.stdout == (JOBS / f"{case}.out.json").read_text()


@pytest.mark.parametrize("case", cases())
def test_golden_output_uninjects_to_the_input(case: str) -> None:
    result = run_render(["--uninject", str(JOBS / f"{case}.out.json")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((JOBS / f"{case}.in.json").read_text())


@pytest.mark.parametrize("case", cases())
def test_golden_output_is_a_fixed_point(case: str) -> None:
    out = JOBS / f"{case}.out.json"
    flags: list[str] = []
    for name, value in json.loads((JOBS / "settings.json").read_text()).get(case, {}).items():
        flags += ["--" + name.replace("_", "-"), value]
    result = run_render([*flags, str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == out.read_text()


# --- small jobs ----------------------------------------------------------------------------------


def sidecar_of(group: dict[str, Any]) -> dict[str, Any]:
    (task,) = [t for t in group["Tasks"] if t["Name"] == keys.SIDECAR_TASK]
    return task


def test_strict_moves_the_service_to_the_tls_port_and_rewrites_checks() -> None:
    group = meshed(job())["TaskGroups"][0]
    (service,) = group["Services"]
    assert service["PortLabel"] == "mesh_tls_http"
    assert service["Tags"] == ["v1", keys.TLS_SERVICE_TAG]
    http, tcp, script, grpc = service["Checks"]
    assert http["Protocol"] == "https"
    assert http["TLSSkipVerify"] is True
    assert http["TLSServerName"] == "web.service.consul"
    assert list(http) == ["Name", "Type", "Path", "Protocol", "Interval", "TLSServerName",
                          "TLSSkipVerify"]  # fmt: skip
    assert tcp["PortLabel"] == "mesh_tls_http" and "Protocol" not in tcp
    assert script == {"Name": "s", "Type": "script", "Command": "/bin/true"}
    assert grpc == {"Name": "g", "Type": "grpc", "PortLabel": "http"}  # pinned to the app port


def test_check_skip_verify_follows_config() -> None:
    config = MeshConfig(check_tls_skip_verify=False)
    group = meshed(job(), config)["TaskGroups"][0]
    assert group["Services"][0]["Checks"][0]["TLSSkipVerify"] is False


def test_permissive_keeps_the_plaintext_registration_before_its_tls_twin() -> None:
    group = meshed(job(meta={"mesh.tls.mode": "permissive"}))["TaskGroups"][0]
    plain, tls = group["Services"]
    assert plain["PortLabel"] == "http" and plain["Tags"] == ["v1", keys.PLAINTEXT_SERVICE_TAG]
    assert plain["Checks"] == job()["TaskGroups"][0]["Services"][0]["Checks"]
    assert tls["PortLabel"] == "mesh_tls_http" and tls["Tags"] == ["v1", keys.TLS_SERVICE_TAG]
    assert plain["Name"] == tls["Name"] == "web"


def test_canary_tags_keep_the_marker() -> None:
    j = job()
    j["TaskGroups"][0]["Services"][0]["CanaryTags"] = ["canary"]
    service = meshed(j)["TaskGroups"][0]["Services"][0]
    assert service["CanaryTags"] == ["canary", keys.TLS_SERVICE_TAG]


@pytest.mark.parametrize(("mode", "to"), [("bridge", -1), ("host", 0), ("", 0), ("cni/x", -1)])
def test_tls_port_is_dynamic_on_the_same_host_network(mode: str, to: int) -> None:
    ports = meshed(job(mode))["TaskGroups"][0]["Networks"][0]["DynamicPorts"]
    assert ports[1] == {"Label": "mesh_tls_http", "Value": 0, "To": to, "HostNetwork": "lan"}


def test_sidecar_task_shape_docker_host_mode() -> None:
    task = sidecar_of(meshed(job("host"))["TaskGroups"][0])
    assert task["Driver"] == "docker"
    assert task["Config"]["image"] == DOCKER.sidecar_image
    assert task["Config"]["network_mode"] == "host"
    assert task["Lifecycle"] == {"Hook": "prestart", "Sidecar": True}
    assert task["Meta"] == {keys.MANAGED_TASK_META: "true"}
    assert task["KillSignal"] == "SIGQUIT"
    assert task["Resources"] == {"CPU": DOCKER.sidecar_cpu, "MemoryMB": DOCKER.sidecar_memory_mb}
    # The token file stays on (Nomad's default); the token can issue only this job's names.
    assert task["Vault"] == {
        "Role": "mesh-workload",
        "Env": False,
        "DisableFile": False,
        "ChangeMode": "noop",
    }
    cert, conf = task["Templates"]
    assert cert["DestPath"] == nginx.CERT_DEST and cert["Perms"] == "0600"
    assert (cert["ChangeMode"], cert["ChangeSignal"]) == ("signal", "SIGHUP")
    assert conf["DestPath"] == nginx.CONF_DEST
    assert (conf["ChangeMode"], conf["ChangeSignal"]) == ("signal", "SIGHUP")


@pytest.mark.parametrize("driver", list(SidecarDriver))
def test_mtls_adds_a_public_ca_bundle_template_before_nginx_conf(driver: SidecarDriver) -> None:
    config = MeshConfig(sidecar_driver=driver, pki_mount="pki_mesh")
    task = sidecar_of(meshed(job(meta={"mesh.tls.mtls": "true"}), config)["TaskGroups"][0])
    cert, ca, conf = task["Templates"]
    assert cert["DestPath"] == nginx.CERT_DEST and cert["Perms"] == "0600"
    assert cert["EmbeddedTmpl"].count("pkiCert") == 1
    assert (ca["DestPath"], ca["Perms"]) == (nginx.CA_DEST, "0644")
    assert (ca["ChangeMode"], ca["ChangeSignal"]) == ("signal", "SIGHUP")
    assert "Uid" not in ca, "not secret: readable by whatever user nginx runs as"
    assert ca["EmbeddedTmpl"] == nginx.ca_template("pki_mesh")
    assert '"pki_mesh/cert/ca_chain"' in ca["EmbeddedTmpl"]
    assert conf["DestPath"] == nginx.CONF_DEST
    assert f"/{nginx.CA_FILE};" in conf["EmbeddedTmpl"]


def test_without_mtls_there_is_no_ca_bundle() -> None:
    task = sidecar_of(meshed(job(meta={"mesh.tls.mtls": "false"}))["TaskGroups"][0])
    assert [t["DestPath"] for t in task["Templates"]] == [nginx.CERT_DEST, nginx.CONF_DEST]
    assert "ssl_client_certificate" not in task["Templates"][1]["EmbeddedTmpl"]


def test_sidecar_task_bridge_docker_joins_the_namespace() -> None:
    task = sidecar_of(meshed(job("bridge"))["TaskGroups"][0])
    assert "network_mode" not in task["Config"]


def test_sidecar_task_raw_exec_runs_the_binary_with_paths_in_the_task_dir() -> None:
    task = sidecar_of(meshed(job(meta={"mesh.tls.protocol": "tcp"}), RAW)["TaskGroups"][0])
    assert task["Driver"] == "raw_exec"
    assert task["Config"]["command"] == RAW.nginx_bin
    args = task["Config"]["args"]
    assert args[args.index("-c") + 1] == "${NOMAD_TASK_DIR}/nginx.conf"
    assert args[args.index("-p") + 1] == "${NOMAD_TASK_DIR}/"
    assert f"load_module {RAW.nginx_stream_module};" in task["Templates"][1]["EmbeddedTmpl"]


@pytest.mark.parametrize(
    ("driver", "owner"), [(SidecarDriver.EXEC, 65534), (SidecarDriver.RAW_EXEC, None)]
)
def test_key_file_belongs_to_the_user_nginx_runs_as(
    driver: SidecarDriver, owner: int | None
) -> None:
    task = sidecar_of(meshed(job(), MeshConfig(sidecar_driver=driver))["TaskGroups"][0])
    cert = task["Templates"][0]
    assert cert.get("Uid") == owner and cert.get("Gid") == owner


def test_certificate_names_and_ttl() -> None:
    j = job(meta={"mesh.tls.sans": "web.example.com", "mesh.tls.ttl": "24h"})
    j["TaskGroups"][0]["Tasks"][0]["Services"] = [{"Name": "web-admin", "PortLabel": "http"}]
    task = sidecar_of(meshed(j)["TaskGroups"][0])
    template = task["Templates"][0]["EmbeddedTmpl"]
    assert '"common_name=web.service.consul"' in template
    assert task["Env"][nginx.ENV_ALT_NAMES] == (
        "alt_names=web-admin.service.consul,web.service.${NOMAD_DC}.consul,"
        "web-admin.service.${NOMAD_DC}.consul,web.example.com"
    )
    assert task["Env"][nginx.ENV_IP_SANS] == "ip_sans=${NOMAD_IP_mesh_tls_http}"
    ttl = jittered_ttl(24 * 3600, "default", "web")
    assert f'"ttl={ttl}s"' in template


def test_only_enabled_groups_are_touched_and_unknown_fields_survive() -> None:
    j = job()
    other = copy.deepcopy(j["TaskGroups"][0])
    other["Name"] = "batch"
    other["Meta"] = {"mesh.tls": "false"}
    j["TaskGroups"].append(other)
    out = meshed(j)
    assert out["TaskGroups"][1] == other
    assert out["XUnknown"] is True
    assert out["TaskGroups"][0]["XFutureField"] == {"kept": [1, 2]}


def test_marker_and_undo_record() -> None:
    j = job()
    out = meshed(j)
    meta = out["TaskGroups"][0]["Meta"]
    spec = parse_job_specs(j)["web"]
    assert meta[keys.INJECTED_GROUP_META] == spec_hash(spec, DOCKER, j, j["TaskGroups"][0])
    assert meta[keys.INJECTED_GROUP_META].startswith(f"{INJECTOR_VERSION}:")
    record = json.loads(meta[keys.UNDO_GROUP_META])
    assert record["meta"] == "null"  # uninject puts the null back
    assert record["group"]["Services"] == j["TaskGroups"][0]["Services"]
    assert record["sidecar_at"] == 1
    assert "," + " " not in meta[keys.UNDO_GROUP_META]  # compact


def test_absent_keys_are_removed_again() -> None:
    j = job(meta={"mesh.tls.ports": "http"})
    group = j["TaskGroups"][0]
    del group["Meta"]
    del group["Services"]
    group["Tasks"] = None
    out = meshed(j)
    assert [t["Name"] for t in out["TaskGroups"][0]["Tasks"]] == [keys.SIDECAR_TASK]
    # A new key goes where Nomad's struct order puts it: Meta before Networks.
    assert list(out["TaskGroups"][0]) == ["Name", "Meta", "Networks", "Tasks", "XFutureField"]
    assert "Services" not in out["TaskGroups"][0]
    assert uninject(out) == j


def test_inject_and_uninject_never_mutate_their_input() -> None:
    j = job()
    before = copy.deepcopy(j)
    out = meshed(j)
    assert j == before
    frozen = copy.deepcopy(out)
    uninject(out)
    assert out == frozen


def test_roundtrip_and_idempotence() -> None:
    j = job(meta={"mesh.tls.mode": "permissive"})
    out = meshed(j)
    assert uninject(out) == j
    assert inject(out, parse_job_specs(uninject(out)), DOCKER) == out


def test_cannot_inject_a_group_without_ports() -> None:
    j = job(Services=None)
    with pytest.raises(CannotInject, match="no port to front"):
        meshed(j)


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '{"v":2,"group":{},"absent":[],"tasks":[],"sidecar_at":null}', None],
)
def test_corrupt_undo_record_is_an_error(raw: str | None) -> None:
    out = meshed(job())
    if raw is None:
        del out["TaskGroups"][0]["Meta"][keys.UNDO_GROUP_META]
    else:
        out["TaskGroups"][0]["Meta"][keys.UNDO_GROUP_META] = raw
    with pytest.raises(UndoError, match='group "web"'):
        uninject(out)


@pytest.mark.parametrize("mangled_meta", [[], None, {"owner": "someone"}])
def test_a_sidecar_whose_meta_was_mangled_still_goes_where_the_record_says(
    mangled_meta: object,
) -> None:
    """Found by the fuzzer: another tool rewrote the sidecar's Meta, dropping our managed
    marker; the group's undo record still says where the sidecar is, so un-injecting removes
    it instead of leaving a task by our name behind in a job the mesh no longer covers."""
    j = job()
    out = meshed(j)
    sidecar_of(out["TaskGroups"][0])["Meta"] = mangled_meta
    assert uninject(out) == j
