"""MeshConfig: cluster-wide defaults that are not per-job choices.

Operators set these once (env `MESH_<FIELD>`, flags, or the Variable `mesh-controller/config`);
teams never do. Defaults target a production Nomad cluster with the docker driver; the devstack
and bare-metal clusters switch the sidecar to raw_exec/exec with a binary path.
"""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class SidecarDriver(StrEnum):
    """Task drivers the sidecar can run under."""

    DOCKER = "docker"
    RAW_EXEC = "raw_exec"
    EXEC = "exec"


class MeshConfig(BaseModel):
    """Defaults for every meshed job; env var of a field is MESH_<FIELD_NAME_UPPER>."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sidecar_driver: SidecarDriver = Field(
        default=SidecarDriver.DOCKER, description="Driver of the `mesh-tls-proxy` task."
    )
    sidecar_image: str = Field(
        default="nginx:1.27-alpine", description="nginx image when the driver is docker."
    )
    nginx_bin: str = Field(
        default="/usr/sbin/nginx", description="nginx binary for raw_exec/exec drivers."
    )
    nginx_stream_module: str = Field(
        default="/usr/lib/nginx/modules/ngx_stream_module.so",
        description="Stream module loaded for tcp mode; empty when nginx has it built in.",
    )
    sidecar_cpu: int = Field(default=100, ge=1, description="Sidecar CPU in MHz.")
    sidecar_memory_mb: int = Field(default=64, ge=16, description="Sidecar memory in MB.")
    pki_mount: str = Field(default="pki_int", description="Vault mount of the issuing CA.")
    pki_role: str = Field(default="mesh", description="Vault PKI role that issues leaves.")
    root_mount: str = Field(default="pki", description="Vault mount of the root CA.")
    domain: str = Field(default="service.consul", description="Leaf CN is `<service>.<domain>`.")
    datacenter_domain: str = Field(
        default="consul", description="SAN `<service>.service.<dc>.<datacenter_domain>`."
    )
    vault_role: str = Field(
        default="mesh-workload",
        description="Nomad `vault.role` of the sidecar: the JWT auth role its identity logs in "
        "with (bootstrap-pki creates `mesh-workload`); empty = the client's default role.",
    )
    check_tls_skip_verify: bool = Field(
        default=True,
        description="https checks on TLS ports skip verification, Consul's and Nomad-native "
        "ones alike (agents need not trust the mesh CA; the controller verifies the chain "
        "itself).",
    )
    ttl_default: str = Field(default="72h", description="Leaf TTL when `mesh.tls.ttl` is unset.")
