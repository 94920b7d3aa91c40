"""Settings: HashiCorp env conventions, Go syntaxes, precedence, secrets, and the README table."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from controller.config import (
    ConfigError,
    ConsulSettings,
    Settings,
    format_duration,
    load_mesh_config,
    load_model_from_env,
    settings_markdown,
    settings_table,
)
from crds_equivalent.config import MeshConfig, SidecarDriver

TOKENS = {
    "NOMAD_TOKEN": "nomad-secret-0f9c",
    "VAULT_TOKEN": "hvs.vault-secret-77",
    "CONSUL_HTTP_TOKEN": "consul-secret-3b1",
}


def test_defaults_follow_the_hashicorp_clients_and_the_brief() -> None:
    s = Settings.from_env({})
    assert s.nomad.addr == "http://127.0.0.1:4646"
    assert s.vault.addr == "https://127.0.0.1:8200"
    assert s.consul.http_addr is None and not s.consul.configured  # Consul is optional
    assert not s.nomad.skip_verify
    assert not s.vault.skip_verify
    assert not s.consul.skip_verify
    assert s.nomad.token is None
    c = s.controller
    assert (c.namespaces, c.controller_namespace, c.workers) == ("*", "default", 4)
    assert (c.resync_interval, c.leader_ttl, c.leader_renew) == (600.0, 15.0, 5.0)
    assert (c.http_addr, c.http_allow_public) == ("127.0.0.1:9464", False)
    assert (c.log_level, c.log_format) == ("info", "auto")
    assert (c.heartbeat_timeout, c.backoff_base, c.backoff_cap) == (60.0, 0.5, 300.0)
    assert (c.qps, c.burst, c.drain_timeout) == (20.0, 100, 30.0)
    assert (c.health_interval, c.ca_rotate_before) == (30.0, 30 * 86400.0)
    assert s.mesh == MeshConfig()


@pytest.mark.parametrize(
    ("var", "raw", "path", "expected"),
    [
        ("NOMAD_ADDR", "https://nomad.example:4646", "nomad.addr", "https://nomad.example:4646"),
        ("NOMAD_NAMESPACE", "apps", "nomad.namespace", "apps"),
        ("NOMAD_REGION", "eu", "nomad.region", "eu"),
        ("NOMAD_CACERT", "/etc/nomad/ca.pem", "nomad.cacert", "/etc/nomad/ca.pem"),
        ("NOMAD_CAPATH", "/etc/nomad/ca.d", "nomad.capath", "/etc/nomad/ca.d"),
        ("NOMAD_CLIENT_CERT", "/c.pem", "nomad.client_cert", "/c.pem"),
        ("NOMAD_CLIENT_KEY", "/k.pem", "nomad.client_key", "/k.pem"),
        (
            "NOMAD_TLS_SERVER_NAME",
            "server.global.nomad",
            "nomad.tls_server_name",
            "server.global.nomad",
        ),
        ("NOMAD_SKIP_VERIFY", "true", "nomad.skip_verify", True),
        ("VAULT_ADDR", "https://vault:8200", "vault.addr", "https://vault:8200"),
        ("VAULT_NAMESPACE", "team-a", "vault.namespace", "team-a"),
        ("VAULT_CACERT", "/v/ca.pem", "vault.cacert", "/v/ca.pem"),
        ("VAULT_CAPATH", "/v/ca.d", "vault.capath", "/v/ca.d"),
        ("VAULT_CLIENT_CERT", "/v/c.pem", "vault.client_cert", "/v/c.pem"),
        ("VAULT_CLIENT_KEY", "/v/k.pem", "vault.client_key", "/v/k.pem"),
        ("VAULT_TLS_SERVER_NAME", "vault.internal", "vault.tls_server_name", "vault.internal"),
        ("VAULT_SKIP_VERIFY", "1", "vault.skip_verify", True),
        ("CONSUL_HTTP_ADDR", "consul:8501", "consul.http_addr", "consul:8501"),
        ("CONSUL_HTTP_SSL", "T", "consul.http_ssl", True),
        ("CONSUL_HTTP_SSL_VERIFY", "false", "consul.skip_verify", True),
        ("CONSUL_CACERT", "/c/ca.pem", "consul.cacert", "/c/ca.pem"),
        ("CONSUL_CAPATH", "/c/ca.d", "consul.capath", "/c/ca.d"),
        ("CONSUL_CLIENT_CERT", "/c/c.pem", "consul.client_cert", "/c/c.pem"),
        ("CONSUL_CLIENT_KEY", "/c/k.pem", "consul.client_key", "/c/k.pem"),
        ("CONSUL_TLS_SERVER_NAME", "consul.dc1", "consul.tls_server_name", "consul.dc1"),
        ("MESH_NAMESPACES", "a, b", "controller.watched_namespaces", ("a", "b")),
        ("MESH_CONTROLLER_NAMESPACE", "mesh", "controller.controller_namespace", "mesh"),
        ("MESH_WORKERS", "16", "controller.workers", 16),
        ("MESH_RESYNC_INTERVAL", "1h30m", "controller.resync_interval", 5400.0),
        ("MESH_HTTP_ADDR", "127.0.0.5:9000", "controller.http_host_port", ("127.0.0.5", 9000)),
        ("MESH_LEADER_TTL", "30s", "controller.leader_ttl", 30.0),
        ("MESH_LEADER_RENEW", "2500ms", "controller.leader_renew", 2.5),
        ("MESH_LOG_LEVEL", "DEBUG", "controller.log_level", "debug"),
        ("MESH_LOG_FORMAT", "json", "controller.log_format", "json"),
        ("MESH_HEARTBEAT_TIMEOUT", "90", "controller.heartbeat_timeout", 90.0),
        ("MESH_BACKOFF_BASE", "0.25", "controller.backoff_base", 0.25),
        ("MESH_BACKOFF_CAP", "10m", "controller.backoff_cap", 600.0),
        ("MESH_QPS", "5.5", "controller.qps", 5.5),
        ("MESH_BURST", "7", "controller.burst", 7),
        ("MESH_DRAIN_TIMEOUT", "1m", "controller.drain_timeout", 60.0),
        ("MESH_HEALTH_INTERVAL", "45s", "controller.health_interval", 45.0),
        ("MESH_CA_ROTATE_BEFORE", "168h", "controller.ca_rotate_before", 604800.0),
        ("MESH_SIDECAR_DRIVER", "raw_exec", "mesh.sidecar_driver", SidecarDriver.RAW_EXEC),
        ("MESH_SIDECAR_CPU", "250", "mesh.sidecar_cpu", 250),
        ("MESH_CHECK_TLS_SKIP_VERIFY", "0", "mesh.check_tls_skip_verify", False),
    ],
)
def test_each_variable_is_read(var: str, raw: str, path: str, expected: object) -> None:
    obj: object = Settings.from_env({var: raw})
    for part in path.split("."):
        obj = getattr(obj, part)
    assert obj == expected


@pytest.mark.parametrize("raw", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_true_values(raw: str) -> None:
    assert Settings.from_env({"NOMAD_SKIP_VERIFY": raw}).nomad.skip_verify is True


@pytest.mark.parametrize("raw", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_false_values(raw: str) -> None:
    assert Settings.from_env({"VAULT_SKIP_VERIFY": raw}).vault.skip_verify is False


@pytest.mark.parametrize("raw", ["yes", "on", "tRuE", "2"])
def test_non_go_booleans_are_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="NOMAD_SKIP_VERIFY"):
        Settings.from_env({"NOMAD_SKIP_VERIFY": raw})


def test_consul_verification_is_on_unless_ssl_verify_is_false() -> None:
    assert not Settings.from_env({"CONSUL_HTTP_SSL_VERIFY": "true"}).consul.skip_verify
    assert Settings.from_env({"CONSUL_HTTP_SSL_VERIFY": "false"}).consul.skip_verify


@pytest.mark.parametrize(
    ("addr", "ssl", "url"),
    [
        ("127.0.0.1:8500", None, "http://127.0.0.1:8500"),
        ("127.0.0.1:8501", "true", "https://127.0.0.1:8501"),
        ("https://consul.example:8501", None, "https://consul.example:8501"),
        ("http://consul.example:8501", "true", "https://consul.example:8501"),
    ],
)
def test_consul_url_scheme(addr: str, ssl: str | None, url: str) -> None:
    env = {"CONSUL_HTTP_ADDR": addr} | ({"CONSUL_HTTP_SSL": ssl} if ssl else {})
    assert Settings.from_env(env).consul.url == url


def test_empty_variables_count_as_unset() -> None:
    s = Settings.from_env({"NOMAD_ADDR": "", "MESH_WORKERS": "", "NOMAD_TOKEN": ""})
    assert s.nomad.addr == "http://127.0.0.1:4646"
    assert s.controller.workers == 4
    assert s.nomad.token is None


@pytest.mark.parametrize("raw", ["10 minutes", "5d", "-3s", "abc"])
def test_bad_durations_are_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="MESH_RESYNC_INTERVAL"):
        Settings.from_env({"MESH_RESYNC_INTERVAL": raw})


def test_flags_beat_env_beat_defaults() -> None:
    env = {"NOMAD_ADDR": "http://env:4646", "MESH_WORKERS": "8", "MESH_SIDECAR_IMAGE": "env:1"}
    s = Settings.from_env(
        env, nomad_addr="http://flag:4646", mesh_sidecar_image="flag:2", mesh_qps=None
    )
    assert s.nomad.addr == "http://flag:4646"
    assert s.controller.workers == 8
    assert s.controller.qps == 20.0  # None = flag not given
    assert s.mesh.sidecar_image == "flag:2"


def test_unknown_flags_are_refused() -> None:
    with pytest.raises(ConfigError, match="nomad_adress"):
        Settings.from_env({}, nomad_adress="http://typo")


def test_reads_os_environ_by_default_and_only_the_given_mapping_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "http://from-process:4646")
    monkeypatch.setenv("MESH_SIDECAR_DRIVER", "exec")
    assert Settings.from_env().nomad.addr == "http://from-process:4646"
    assert Settings.from_env().mesh.sidecar_driver is SidecarDriver.EXEC
    isolated = Settings.from_env({})
    assert isolated.nomad.addr == "http://127.0.0.1:4646"
    assert isolated.mesh.sidecar_driver is SidecarDriver.DOCKER


@pytest.mark.parametrize("addr", ["127.0.0.1:9464", "127.9.9.9:0", "[::1]:9464", "localhost:80"])
def test_loopback_http_addresses_are_accepted(addr: str) -> None:
    assert Settings.from_env({"MESH_HTTP_ADDR": addr}).controller.http_addr == addr


@pytest.mark.parametrize("addr", ["0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464", "myhost:9464"])
def test_public_http_addresses_need_an_explicit_opt_in(addr: str) -> None:
    with pytest.raises(ConfigError, match="MESH_HTTP_ALLOW_PUBLIC"):
        Settings.from_env({"MESH_HTTP_ADDR": addr})
    ok = Settings.from_env({"MESH_HTTP_ADDR": addr, "MESH_HTTP_ALLOW_PUBLIC": "true"})
    assert ok.controller.http_addr == addr


def test_malformed_http_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="host:port"):
        Settings.from_env({"MESH_HTTP_ADDR": "127.0.0.1"})


def test_leader_renew_must_be_shorter_than_the_ttl() -> None:
    with pytest.raises(ConfigError, match="MESH_LEADER_RENEW"):
        Settings.from_env({"MESH_LEADER_TTL": "10s", "MESH_LEADER_RENEW": "10s"})


@pytest.mark.parametrize("ttl", ["5s", "9.9s", "25h"])
def test_leader_ttl_must_be_one_nomad_accepts(ttl: str) -> None:
    with pytest.raises(ConfigError, match="MESH_LEADER_TTL"):
        Settings.from_env({"MESH_LEADER_TTL": ttl, "MESH_LEADER_RENEW": "1s"})


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"MESH_WORKERS": "0", "VAULT_SKIP_VERIFY": "maybe"})
    assert "MESH_WORKERS" in str(err.value)
    assert "VAULT_SKIP_VERIFY" in str(err.value)


def test_secrets_never_show_in_repr_str_or_dumps() -> None:
    s = Settings.from_env(TOKENS)
    assert s.nomad.token is not None
    assert s.nomad.token.get_secret_value() == TOKENS["NOMAD_TOKEN"]
    assert s.vault.token is not None
    assert s.vault.token.get_secret_value() == TOKENS["VAULT_TOKEN"]
    assert s.consul.http_token is not None
    assert s.consul.http_token.get_secret_value() == TOKENS["CONSUL_HTTP_TOKEN"]
    renderings = [repr(s), str(s), str(s.model_dump()), s.model_dump_json(), repr(s.nomad)]
    for text in renderings:
        for secret in TOKENS.values():
            assert secret not in text


def test_config_errors_never_echo_a_secret() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(TOKENS | {"MESH_WORKERS": "lots", "MESH_LEADER_RENEW": "1h"})
    for secret in TOKENS.values():
        assert secret not in str(err.value)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Sample(BaseModel):
    name: str = "x"
    count: int = 1
    enabled: bool = False
    colour: Colour = Colour.RED
    tags: list[str] = Field(default_factory=list)
    limits: dict[str, int] = Field(default_factory=dict)
    note: str | None = None


def test_generic_model_loader_reads_every_field_kind() -> None:
    env = {
        "APP_NAME": "svc",
        "APP_COUNT": "3",
        "APP_ENABLED": "T",
        "APP_COLOUR": "blue",
        "APP_TAGS": '["a", "b"]',
        "APP_LIMITS": '{"cpu": 2}',
        "APP_NOTE": "hi",
    }
    got = load_model_from_env(Sample, "APP_", env)
    assert got == Sample(
        name="svc",
        count=3,
        enabled=True,
        colour=Colour.BLUE,
        tags=["a", "b"],
        limits={"cpu": 2},
        note="hi",
    )
    assert load_model_from_env(Sample, "APP_", env, {"count": 9, "note": None}).count == 9


def test_generic_model_loader_names_bad_variables_and_unknown_overrides() -> None:
    with pytest.raises(ConfigError, match="APP_COLOUR"):
        load_model_from_env(Sample, "APP_", {"APP_COLOUR": "green"})
    with pytest.raises(ConfigError, match="APP_ENABLED"):
        load_model_from_env(Sample, "APP_", {"APP_ENABLED": "yes"})
    with pytest.raises(ConfigError, match="nope"):
        load_model_from_env(Sample, "APP_", {}, {"nope": 1})


def test_load_mesh_config_flags_beat_env_beat_defaults() -> None:
    env = {"MESH_SIDECAR_DRIVER": "raw_exec", "MESH_PKI_ROLE": "env-role"}
    cfg = load_mesh_config(env, {"pki_role": "flag-role"})
    assert cfg.sidecar_driver is SidecarDriver.RAW_EXEC
    assert cfg.pki_role == "flag-role"
    assert cfg.domain == MeshConfig().domain
    with pytest.raises(ConfigError, match="MESH_SIDECAR_DRIVER"):
        load_mesh_config({"MESH_SIDECAR_DRIVER": "podman"})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600.0, "10m"), (2592000.0, "720h"), (0.5, "500ms"), (90.0, "90s"), (0.0, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_settings_table_documents_every_setting_once() -> None:
    rows = settings_table()
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)), "a MESH_* knob collides with a MeshConfig field"
    s = Settings.from_env({})
    expected = {f"MESH_{f}".upper() for f in MeshConfig.model_fields}
    for group in (s.nomad, s.vault, s.consul, s.controller):
        prefix = type(group).env_prefix
        expected |= {f"{prefix}{f}".upper() for f in type(group).model_fields}
    assert set(names) == expected
    assert all(desc for _, _, desc in rows), "every setting needs a description"
    assert dict((r[0], r[1]) for r in rows)["MESH_RESYNC_INTERVAL"] == "10m"
    assert settings_markdown().count("\n") == len(rows) + 2


def test_consul_settings_alone_read_the_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "false")
    assert ConsulSettings().skip_verify


def test_every_variable_is_in_the_readme_configuration_table() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text(encoding="utf-8")
    match = re.search(r"^## Configuration\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "README.md needs a '## Configuration' section"
    documented = set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]+)`", match.group(1), re.M))
    missing = [var for var, _, _ in settings_table() if var not in documented]
    assert missing == [], "generate the table with controller.config.settings_markdown()"


def test_consul_is_configured_only_by_an_address() -> None:
    s = Settings.from_env({"CONSUL_HTTP_ADDR": "127.0.0.1:8500"})
    assert s.consul.configured and s.consul.url == "http://127.0.0.1:8500"
    unset = Settings.from_env({"CONSUL_HTTP_ADDR": " "})
    assert not unset.consul.configured
    with pytest.raises(ValueError, match="CONSUL_HTTP_ADDR is not set"):
        _ = unset.consul.url
