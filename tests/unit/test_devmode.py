"""`controller dev` prints an environment to export; controllerctl run with it must see the
mesh the way the controller does — the same injection config, hence the same marker hashes."""

from __future__ import annotations

from controller.config import Settings
from controller.dev.session import dev_environment, dev_exports, export_lines
from reconcilers.injection.hashing import INJECTION_CONFIG_FIELDS

STACK_ENV = {
    "NOMAD_ADDR": "http://127.0.0.1:4646",
    "CONSUL_HTTP_ADDR": "127.0.0.1:8500",
    "VAULT_ADDR": "http://127.0.0.1:8200",
    "VAULT_TOKEN": "dev-token",
}


def injection_config(env: dict[str, str]) -> dict[str, object]:
    return Settings.from_env(env).mesh.model_dump(mode="json", include=set(INJECTION_CONFIG_FIELDS))


def test_exported_env_gives_controllerctl_the_controllers_injection_config() -> None:
    shell = {"PATH": "/usr/bin", "NOMAD_ADDR": "http://elsewhere:4646", "MESH_WORKERS": "2"}
    controller_env = dev_environment(STACK_ENV, shell)
    exported = dev_exports(STACK_ENV, controller_env, "http://127.0.0.1:9464/status")
    # What a user's shell holds after `export`ing the printed lines.
    after_export = {**shell, **exported}
    assert injection_config(after_export) == injection_config(controller_env)
    assert injection_config(after_export)["sidecar_driver"] == "raw_exec"
    assert exported["NOMAD_ADDR"] == STACK_ENV["NOMAD_ADDR"]
    assert exported["MESH_STATUS_URL"] == "http://127.0.0.1:9464/status"
    assert "MESH_HTTP_ADDR" not in exported  # a free-port request, meaningless to a client


def test_a_shell_nginx_path_is_kept_and_exported() -> None:
    controller_env = dev_environment(STACK_ENV, {"MESH_NGINX_BIN": "/opt/nginx/sbin/nginx"})
    lines = export_lines(dev_exports(STACK_ENV, controller_env, "http://x/status"))
    assert "export MESH_NGINX_BIN=/opt/nginx/sbin/nginx\n" in lines
    assert "export MESH_SIDECAR_DRIVER=raw_exec\n" in lines
