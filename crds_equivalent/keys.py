"""Every meta key and marker name of the mesh contract, spelled once.

Other modules import these names; a key spelled anywhere else is a bug, because the keys are an
interface that users, CI pipelines and other controllers depend on.
"""

from typing import Final

# User-facing job/group meta keys (group meta overrides job meta).
MESH_TLS: Final = "mesh.tls"
MESH_TLS_PORTS: Final = "mesh.tls.ports"
MESH_TLS_MODE: Final = "mesh.tls.mode"
MESH_TLS_PROTOCOL: Final = "mesh.tls.protocol"
MESH_TLS_TTL: Final = "mesh.tls.ttl"
MESH_TLS_SANS: Final = "mesh.tls.sans"
MESH_TLS_MTLS: Final = "mesh.tls.mtls"
# Who promotes the canaries of a deployment the controller caused: `manual` (the user) or `auto`.
MESH_TLS_PROMOTE: Final = "mesh.tls.promote"
# Egress: `service:port` pairs the sidecar also listens for on 127.0.0.1 and carries over mTLS.
MESH_TLS_UPSTREAMS: Final = "mesh.tls.upstreams"
# With mesh.tls.mtls: the services whose certificates may call this group (default: any).
MESH_TLS_ALLOW: Final = "mesh.tls.allow"

USER_KEYS: Final = (
    MESH_TLS,
    MESH_TLS_PORTS,
    MESH_TLS_MODE,
    MESH_TLS_PROTOCOL,
    MESH_TLS_TTL,
    MESH_TLS_SANS,
    MESH_TLS_MTLS,
    MESH_TLS_PROMOTE,
    MESH_TLS_UPSTREAMS,
    MESH_TLS_ALLOW,
)

# Controller-owned markers on the job.
SIDECAR_TASK: Final = "mesh-tls-proxy"
MANAGED_TASK_META: Final = "mesh.tls.managed"
INJECTED_GROUP_META: Final = "mesh.tls.injected"
UNDO_GROUP_META: Final = "mesh.tls.undo"
# Written by the controller to force a certificate re-issue (remediation, intermediate rotation);
# an input of the injection, so it survives uninject/inject and is not stripped with the others.
ROTATION_GROUP_META: Final = "mesh.tls.rotation"
TLS_PORT_PREFIX: Final = "mesh_tls_"
# Host mode: the static port reserving an upstream's loopback listener (under TLS_PORT_PREFIX).
UPSTREAM_PORT_PREFIX: Final = "mesh_tls_upstream_"
TLS_SERVICE_TAG: Final = "mesh-tls"
PLAINTEXT_SERVICE_TAG: Final = "mesh-plaintext"

OWNED_GROUP_META: Final = (INJECTED_GROUP_META, UNDO_GROUP_META)

# Nomad Variable paths (in the controller's namespace).
VAR_CONFIG: Final = "mesh-controller/config"
VAR_LEADER: Final = "mesh-controller/leader"
VAR_STATUS_PREFIX: Final = "mesh-controller/status"
VAR_ROTATION: Final = "mesh-controller/rotation"


def tls_port_label(label: str) -> str:
    """The label of the TLS port that fronts the user's port ``label``."""
    return f"{TLS_PORT_PREFIX}{label}"


def upstream_port_label(port: int) -> str:
    """The label of the static port that reserves the upstream listener on ``port`` (host mode)."""
    return f"{UPSTREAM_PORT_PREFIX}{port}"


def status_path(namespace: str, job: str) -> str:
    """The Variable path holding the status of one job."""
    return f"{VAR_STATUS_PREFIX}/{namespace}/{job}"
