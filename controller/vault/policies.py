"""The two Vault ACL policies of the mesh, as text generated from the PKI layout.

Least privilege is the point: a workload can only ask the mesh role for a leaf and read the
public CA chain its mTLS trust bundle is rendered from; the controller can read the CA side and
rotate issuers, but cannot issue leaves or touch any other secret.
"""

from __future__ import annotations

from dataclasses import dataclass

WORKLOAD_POLICY = "mesh-workload"
CONTROLLER_POLICY = "mesh-controller"


@dataclass(frozen=True)
class PolicyPaths:
    root_mount: str
    int_mount: str
    role: str


def _block(path: str, *caps: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{path}" {{\n  capabilities = [{quoted}]\n}}\n'


def workload_policy(p: PolicyPaths) -> str:
    """Issue leaves from the mesh role and read the CA chain (the sidecar's Nomad templates).

    The PKI engine serves ``cert/ca_chain`` without authentication anyway; the grant is written
    down so the policy names every path the sidecar reads, and adds no privilege.
    """
    return _block(f"{p.int_mount}/issue/{p.role}", "update") + _block(
        f"{p.int_mount}/cert/ca_chain", "read"
    )


def controller_policy(p: PolicyPaths) -> str:
    """Read CA material and role, manage issuers of the intermediate mount for rotation."""
    r, i = p.root_mount, p.int_mount
    parts = [
        "# Liveness of Vault itself.",
        _block("sys/health", "read"),
        "# Its own token: look it up and renew it (also in Vault's default policy, which a",
        "# Nomad workload identity role may leave out).",
        _block("auth/token/lookup-self", "read"),
        _block("auth/token/renew-self", "update"),
        "# Root: read its certificate, sign a new intermediate during rotation.",
        _block(f"{r}/cert/ca", "read"),
        _block(f"{r}/issuers", "list"),
        _block(f"{r}/issuer/+", "read"),
        _block(f"{r}/root/sign-intermediate", "update"),
        "# Intermediate: chain and issuers, default-issuer switch, new issuers, retirement.",
        _block(f"{i}/cert/ca_chain", "read"),
        _block(f"{i}/cert/ca", "read"),
        _block(f"{i}/issuers", "list"),
        _block(f"{i}/issuer/+", "read", "update", "patch", "delete"),
        _block(f"{i}/config/issuers", "read", "update"),
        _block(f"{i}/intermediate/generate/internal", "update"),
        _block(f"{i}/intermediate/set-signed", "update"),
        "# Leaves already issued (serials, revocation state) and the role, read-only.",
        _block(f"{i}/certs", "list"),
        _block(f"{i}/cert/+", "read"),
        _block(f"{i}/roles/{p.role}", "read"),
    ]
    return "\n".join(parts)
