"""The few ways a Vault call fails that a caller decides on, whichever transport made it.

Sealed or unreachable is transient (retry later), permission denied is not, a missing path and
a rejected request each have their own answer. The message names the call and carries Vault's
own error text, never the token.
"""

from __future__ import annotations


class VaultError(Exception):
    """A Vault call failed. The message never contains the token."""


class VaultUnavailable(VaultError):
    """Vault is sealed, down, or unreachable: retry later."""


class VaultPermissionDenied(VaultError):
    """The token lacks a capability (403)."""


class VaultNotFound(VaultError):
    """The path or object does not exist (404)."""


class VaultBadRequest(VaultError):
    """Vault rejected the request (400), e.g. a role violation."""
