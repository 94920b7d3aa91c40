"""The Vault adapter: per-job calls over aiohttp, PKI administration through hvac (in threads)."""

from controller.vault.bootstrap import BootstrapReport, PkiLayout, bootstrap_pki, pki_layout
from controller.vault.client import (
    VaultBadRequest,
    VaultClient,
    VaultConnection,
    VaultError,
    VaultNotFound,
    VaultPermissionDenied,
    VaultUnavailable,
)
from controller.vault.issuers import (
    IssuerInfo,
    ca_chain_pem,
    create_intermediate,
    default_issuer_id,
    delete_issuer,
    list_issuers,
    read_issuer,
    root_pem,
    set_default_issuer,
    set_issuer_usage,
)
from controller.vault.policies import CONTROLLER_POLICY, WORKLOAD_POLICY

__all__ = [
    "CONTROLLER_POLICY",
    "WORKLOAD_POLICY",
    "BootstrapReport",
    "IssuerInfo",
    "PkiLayout",
    "VaultBadRequest",
    "VaultClient",
    "VaultConnection",
    "VaultError",
    "VaultNotFound",
    "VaultPermissionDenied",
    "VaultUnavailable",
    "bootstrap_pki",
    "ca_chain_pem",
    "create_intermediate",
    "default_issuer_id",
    "delete_issuer",
    "list_issuers",
    "pki_layout",
    "read_issuer",
    "root_pem",
    "set_default_issuer",
    "set_issuer_usage",
]
