"""`controllerctl install`, as one function over the Nomad and Vault clients.

The same steps as helm-less-deploy/README.md, in the same order, each looking before it
writes so a second run changes nothing:

1. Vault: the mesh PKI (root, intermediate, role), the mesh-controller / mesh-workload
   policies and the JWT auth method for Nomad's workload identities with the mesh's role on
   it (what `nomad setup vault` sets up) — `bootstrap_pki`.
2. Vault: the controller's login, the JWT role mesh-controller for the job's workload identity
   (the job's ``vault`` block; Nomad writes the token file the controller reads). Only a job
   without a ``vault`` block (a ``--job-file`` of your own) gets a long-lived token instead
   (orphan, periodic, policy mesh-controller) in the Variable; otherwise a VAULT_TOKEN left
   there by an older install is removed and named by accessor.
3. Nomad, when ACLs are on: the ACL policy mesh-controller and a client token with it.
4. Nomad: the Variable nomad/jobs/<job> — tokens and addresses the job's template turns into
   the controller's environment (no Vault token when the job logs in with its identity).
5. Nomad: the system job from mesh-controller.nomad.json (shipped in this package, so an
   installed `controllerctl` has it; helm-less-deploy/gen.py writes it and the committed copy),
   at the version asked for; an existing job is upgraded in place and the install waits for
   the rollout and reports the failover it caused (upgrade.py).

Consul is not written to: the controller only reads Consul, and its Consul token (when Consul
has ACLs) is made with the `consul` CLI from policies/consul-mesh-controller.hcl and handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from pydantic import SecretStr

from controller.config import NomadSettings
from controller.deploy.controller_identity import ensure_controller_role, logs_in_with_identity
from controller.deploy.jobversion import with_version
from controller.deploy.nomad_install import (
    acl_enabled,
    ensure_acl_policy,
    ensure_acl_token,
    ensure_variable,
    read_variable,
    token_checker,
)
from controller.deploy.policies import nomad_policy
from controller.deploy.steps import InstallReport
from controller.deploy.upgrade import apply_job
from controller.deploy.vault_install import (
    DEFAULT_TOKEN_PERIOD,
    ensure_controller_token,
    ensure_pki,
    note_dormant_token,
)
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables
from controller.vault import PkiLayout, VaultClient
from controller.vault.workload_auth import WorkloadAuth

JOB_FILE_NAME = "mesh-controller.nomad.json"


def packaged_job_file() -> Traversable:
    """The system job as Nomad API JSON, shipped as package data (not read from a checkout)."""
    return resources.files("controller.deploy") / JOB_FILE_NAME


@dataclass(frozen=True)
class InstallOptions:
    """What to install. ``controller_env`` holds the non-secret items of the Variable (the
    addresses the controller uses, MESH_* settings); tokens are added by the install."""

    job: Mapping[str, Any]
    layout: PkiLayout = field(default_factory=PkiLayout)
    controller_env: Mapping[str, str] = field(default_factory=dict)
    watched: tuple[str, ...] = ("*",)
    consul_token: str | None = field(default=None, repr=False)
    vault_token_period: str = DEFAULT_TOKEN_PERIOD
    dry_run: bool = False
    # the upgrade (upgrade.py): the version and image to run, and whether to wait for them
    version: str | None = None
    image: str | None = None
    wait: bool = True
    rollout_timeout: float = 600.0
    # Vault's JWT auth method for workload identities; None leaves its JWKS config as found.
    workload_auth: WorkloadAuth | None = None

    @property
    def api_job(self) -> dict[str, Any]:
        """The job without the {"Job": ...} wrapper `nomad job run -output` prints."""
        inner = self.job.get("Job") if "Job" in self.job else self.job
        if not isinstance(inner, Mapping) or not inner.get("ID"):
            raise ValueError("the job file is not a Nomad API job (no Job.ID)")
        return dict(inner)

    @property
    def target_job(self) -> dict[str, Any]:
        """The job to register: the file's, at ``version`` and ``image`` when given."""
        return with_version(self.api_job, self.version, self.image)

    @property
    def namespace(self) -> str:
        return str(self.api_job.get("Namespace") or "default")


async def install(
    nomad: NomadClient,
    vault: VaultClient,
    options: InstallOptions,
    *,
    nomad_client_for: Callable[[str], NomadClient],
    report: InstallReport | None = None,
) -> InstallReport:
    """Run every step; ``nomad_client_for(token)`` builds a client like ``nomad`` with another
    token (to check that a stored controller token still works). Pass ``report`` to keep the
    steps done so far when a later one raises."""
    report = report if report is not None else InstallReport(dry_run=options.dry_run)
    job = options.target_job
    namespace = options.namespace
    variables = NomadVariables(nomad, namespace=namespace)

    # Nomad first: an unreachable Nomad or a bad token stops us before Vault is touched.
    acl = await acl_enabled(nomad)
    await ensure_pki(vault, options.layout, report, options.workload_auth)
    await ensure_controller_role(vault, namespace, report, job_id=str(job["ID"]))
    stored = await read_variable(variables, str(job["ID"]))
    have = dict(stored.items) if stored else {}
    wanted: dict[str, str | None] = dict(options.controller_env)
    drop: tuple[str, ...] = ()
    if logs_in_with_identity(job):  # Nomad writes the task's token file: no long-lived secret
        await note_dormant_token(vault, have.get("VAULT_TOKEN"), report)
        drop = ("VAULT_TOKEN",)
    else:
        wanted["VAULT_TOKEN"] = await ensure_controller_token(
            vault, have.get("VAULT_TOKEN"), report, period=options.vault_token_period
        )
    wanted["MESH_CONTROLLER_NAMESPACE"] = namespace
    wanted["MESH_NAMESPACES"] = ",".join(options.watched)
    if acl:
        await ensure_acl_policy(nomad, nomad_policy(options.watched, namespace), report)
        wanted["NOMAD_TOKEN"] = await ensure_acl_token(
            nomad, have.get("NOMAD_TOKEN"), token_checker(nomad_client_for), report
        )
    else:
        report.unchanged("Nomad: ACLs are off; no ACL policy or token needed")
    if options.consul_token:
        wanted["CONSUL_HTTP_TOKEN"] = options.consul_token

    await ensure_variable(variables, str(job["ID"]), stored, wanted, report, drop)
    await apply_job(
        NomadJobs(nomad),
        variables,
        job,
        report,
        wait=options.wait,
        within=options.rollout_timeout,
    )
    return report


async def install_with(
    nomad_settings: NomadSettings,
    vault: VaultClient,
    options: InstallOptions,
    report: InstallReport,
) -> None:
    """:func:`install` with a Nomad client built (and closed) from ``nomad_settings``; the
    steps done land in ``report`` even when a later one raises, so the caller can show them."""

    def client_for(token: str) -> NomadClient:
        settings = nomad_settings.model_copy(update={"token": SecretStr(token)})
        return NomadClient.from_settings(settings)

    nomad = NomadClient.from_settings(nomad_settings)
    try:
        await install(nomad, vault, options, nomad_client_for=client_for, report=report)
    finally:
        await nomad.close()
