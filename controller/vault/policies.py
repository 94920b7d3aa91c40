"""The two Vault ACL policies of the mesh, as text generated from the PKI layout.

Least privilege is the point: a workload can only ask ITS OWN JOB's PKI role for a leaf (the
role named by its identity's alias metadata, README "Identity-bound certificates") and read the
public CA chain its mTLS trust bundle is rendered from; the controller can read the CA side,
rotate issuers and keep the per-job roles in step with the meshed jobs, but cannot issue leaves
or touch any other secret.
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
    # The JWT auth mount's accessor; Nomad's own asset policy writes this placeholder until
    # `nomad setup vault` knows the real one, and so do the generated helm-less-deploy files.
    jwt_accessor: str = "auth_jwt_X"

    @property
    def job_role_prefix(self) -> str:
        """Per-job roles are ``<role>.<namespace>.<job ID>`` (reconcilers.injection.grant)."""
        return f"{self.role}."


def _block(path: str, *caps: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{path}" {{\n  capabilities = [{quoted}]\n}}\n'


def workload_policy(p: PolicyPaths) -> str:
    """Issue leaves from the task's own job's role and read the CA chain (the sidecar's
    templates).

    The role segment is templated over the entity alias of the JWT login: Vault substitutes the
    ``nomad_namespace`` and ``nomad_job_id`` metadata of the token's own alias, so the path
    names exactly one role, the one the controller keeps for that job; a token from any other
    auth method resolves nothing and gets no issue path at all. The PKI engine serves
    ``cert/ca_chain`` without authentication anyway; the grant is written down so the policy
    names every path the sidecar reads, and adds no privilege.
    """
    meta = f"identity.entity.aliases.{p.jwt_accessor}.metadata"
    role = f"{p.job_role_prefix}{{{{{meta}.nomad_namespace}}}}.{{{{{meta}.nomad_job_id}}}}"
    return _block(f"{p.int_mount}/issue/{role}", "update") + _block(
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
        "# Per-job roles (identity-bound leaves): kept in step with each meshed job's names,",
        "# deleted when the job stops being meshed or is purged. Never the issue paths.",
        _block(f"{i}/roles/{p.job_role_prefix}*", "create", "read", "update", "delete"),
        "# Their names, listed once per resync interval: a role deleted out of band is granted",
        "# again (controller.vault.grants).",
        _block(f"{i}/roles", "list"),
    ]
    return "\n".join(parts)
