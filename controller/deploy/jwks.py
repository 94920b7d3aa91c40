"""Where Vault finds the cluster's workload-identity keys: the `--jwks-url` of install and
bootstrap-pki, as `nomad setup vault -jwks-url/-jwks-ca-file` takes it.

Nomad serves its public keys at ``<NOMAD_ADDR>/.well-known/jwks.json`` (any agent answers, and
forwards to the servers), so the default is the Nomad address the command itself uses. Vault
fetches that URL itself, from Vault's network: where Nomad's address as seen by the operator
is not reachable from Vault (a load balancer, a loopback address), pass the URL Vault can use.
"""

from __future__ import annotations

from pathlib import Path

from controller.vault.workload_auth import WorkloadAuth

JWKS_PATH = "/.well-known/jwks.json"  # nomad/structs JWKSPath


def default_jwks_url(nomad_addr: str) -> str:
    return nomad_addr.rstrip("/") + JWKS_PATH


def workload_auth(jwks_url: str, jwks_ca_file: str | None) -> WorkloadAuth:
    """The JWT auth setup to make; raises ValueError naming the option when a file is bad."""
    if not jwks_url.startswith(("http://", "https://")):
        raise ValueError(f"--jwks-url must be an http(s) URL, got {jwks_url!r}")
    pem = ""
    if jwks_ca_file is not None:
        try:
            pem = Path(jwks_ca_file).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"--jwks-ca-file {jwks_ca_file}: {err}") from None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError(f"--jwks-ca-file {jwks_ca_file}: expected a PEM CA certificate")
    return WorkloadAuth(jwks_url=jwks_url, jwks_ca_pem=pem)
