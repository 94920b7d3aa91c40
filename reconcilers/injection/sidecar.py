"""The ``mesh-tls-proxy`` task: nginx terminating TLS in front of the group's app ports.

A prestart sidecar (``Lifecycle{Hook: prestart, Sidecar: true}``) starts before the app and
runs beside it. Its templates are the certificate file, the mesh CA bundle (mtls only) and
nginx.conf (``reconcilers.injection.nginx``); each re-renders with SIGHUP, which makes nginx
re-read config, certificate and trust anchors without dropping connections. SIGQUIT is nginx's
graceful stop, so in-flight requests finish on shutdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig, SidecarDriver
from reconcilers.injection import nginx

TEMPLATE_SPLAY_NS = 5_000_000_000  # Nomad's default, written out so the job says what it does
# exec tasks run as `nobody` by default, but templates are owned by the Nomad agent's user;
# the 0600 key file must belong to the user nginx runs as.
EXEC_NOBODY_ID = 65534

NGINX_ARGS = (
    "-p", "${NOMAD_TASK_DIR}/",
    "-e", "stderr",
    "-c", "${NOMAD_TASK_DIR}/" + nginx.CONF_FILE,
    "-g", "daemon off;",
)  # fmt: skip


@dataclass(frozen=True)
class SidecarSpec:
    """Everything the sidecar of one group is built from."""

    listeners: tuple[nginx.Listener, ...]
    tcp: bool
    mtls: bool
    common_name: str
    alt_names: tuple[str, ...]
    ip_labels: tuple[str, ...]  # TLS port labels whose NOMAD_IP_ become IP SANs
    ttl_seconds: int
    rotation: str = ""  # the group's mesh.tls.rotation nonce, "" when never re-issued
    # Upstreams and allow list (nginx.Edges); empty for a group that uses neither.
    edges: nginx.Edges = field(default_factory=nginx.Edges)
    # The group network is namespaced (bridge/CNI); read when there is no listener to tell,
    # i.e. for a pure client.
    namespaced: bool = False
    # The job's own PKI role (reconcilers.injection.grant.job_role); "" = config.pki_role.
    pki_role: str = ""


def _template(dest: str, body: str, perms: str, owner: int | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {
        "SourcePath": "",
        "DestPath": dest,
        "EmbeddedTmpl": body,
        "ChangeMode": "signal",
        "ChangeSignal": "SIGHUP",
        "Splay": TEMPLATE_SPLAY_NS,
        "Perms": perms,
    }
    if owner is not None:
        template.update(Uid=owner, Gid=owner)
    template.update(LeftDelim="{{", RightDelim="}}", Envvars=False)
    return template


def _driver_config(config: MeshConfig, host_network: bool) -> dict[str, Any]:
    if config.sidecar_driver is SidecarDriver.DOCKER:
        driver: dict[str, Any] = {
            "image": config.sidecar_image,
            "command": "nginx",
            "args": list(NGINX_ARGS),
        }
        if host_network:
            # Listen on the allocation's host address and reach the app on it, like raw_exec.
            driver["network_mode"] = "host"
        return driver
    return {"command": config.nginx_bin, "args": list(NGINX_ARGS)}


def stream_module(config: MeshConfig) -> str:
    """The load_module path, or "" where the stream module is built in (the nginx image)."""
    if config.sidecar_driver is SidecarDriver.DOCKER:
        return ""
    return config.nginx_stream_module


def _templates(spec: SidecarSpec, config: MeshConfig) -> list[dict[str, Any]]:
    """Certificate file, then (mtls) the public CA bundle, then nginx.conf.

    The leaf is issued from the job's own role: the task's token may issue from no other
    (README "Identity-bound certificates")."""
    pki_path = f"{config.pki_mount}/issue/{spec.pki_role or config.pki_role}"
    owner = EXEC_NOBODY_ID if config.sidecar_driver is SidecarDriver.EXEC else None
    conf = nginx.nginx_conf(
        spec.listeners,
        tcp=spec.tcp,
        mtls=spec.mtls,
        stream_module=stream_module(config),
        edges=spec.edges,
    )
    templates = [
        _template(
            nginx.CERT_DEST,
            nginx.cert_template(pki_path, spec.common_name, spec.ttl_seconds, spec.rotation),
            "0600",
            owner,
        )
    ]
    if spec.mtls or spec.edges.upstreams:  # trust anchors: of callers, or of upstreams
        templates.append(_template(nginx.CA_DEST, nginx.ca_template(config.pki_mount), "0644"))
    templates.append(_template(nginx.CONF_DEST, conf, "0644"))
    return templates


def sidecar_task(spec: SidecarSpec, config: MeshConfig) -> dict[str, Any]:
    """The task dict, keys in Nomad's Task struct order."""
    if spec.listeners:
        host_network = not any(listener.namespaced for listener in spec.listeners)
    else:
        host_network = not spec.namespaced
    return {
        "Name": keys.SIDECAR_TASK,
        "Driver": str(config.sidecar_driver),
        "Config": _driver_config(config, host_network),
        "Env": nginx.cert_env(spec.alt_names, spec.ip_labels),
        # The token file stays on, as Nomad's default has it: the token is bound to this job's
        # names (it can do no more than the sidecar's own key), and an operator can ask Vault
        # what it may do (`vault token capabilities`). Env stays off: nginx needs no token.
        "Vault": {
            "Role": config.vault_role,
            "Env": False,
            "DisableFile": False,
            "ChangeMode": "noop",
        },
        "Templates": _templates(spec, config),
        "Resources": {"CPU": config.sidecar_cpu, "MemoryMB": config.sidecar_memory_mb},
        # A restart (the controller's remediation of a missed renewal) must re-render the
        # certificate: without render_templates Nomad restarts the task on the old file.
        "RestartPolicy": {"RenderTemplates": True},
        "Lifecycle": {"Hook": "prestart", "Sidecar": True},
        "Meta": {keys.MANAGED_TASK_META: "true"},
        "KillSignal": "SIGQUIT",
    }


def dedupe(values: Sequence[str]) -> tuple[str, ...]:
    """Values in first-seen order without repeats."""
    return tuple(dict.fromkeys(values))
