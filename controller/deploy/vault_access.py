"""Why Vault refused an administrative call, in words the admin running it can act on.

`bootstrap-pki` and `install` both run with a token an administrator hands them; when Vault
says "permission denied" the useful answer is either "this token is dead" or "it lacks this
capability on this path". Both commands need the same answer, so it is worked out once here.
"""

from __future__ import annotations

import re

from controller.vault import VaultClient, VaultError, VaultPermissionDenied

# VaultClient names each call "<verb> <path>"; the verb tells which capability was missing.
_CALL = re.compile(r"^(read|list|write|patch|delete) (\S+): permission denied")
_CAPABILITY = {
    "read": '"read"',
    "list": '"list"',
    "write": '"create" or "update"',
    "patch": '"patch"',
    "delete": '"delete"',
}


def denied_message(err: VaultPermissionDenied) -> str:
    """Say which capability on which path the token lacks."""
    text = str(err)
    match = _CALL.match(text)
    if match is None:
        return f"the Vault token lacks a capability: {text}"
    verb, path = match.groups()
    return (
        f'the Vault token lacks the {_CAPABILITY[verb]} capability on "{path}"; bootstrap '
        "needs a token that may manage mounts, PKI issuers and ACL policies (e.g. an admin "
        f"token) — Vault said: {text}"
    )


async def token_valid(client: VaultClient) -> bool:
    """Every valid token may look itself up (default policy); an invalid one may not."""
    try:
        await client.read("auth/token/lookup-self")
    except VaultPermissionDenied:
        return False
    except VaultError:
        return True  # cannot tell: report the missing capability instead
    return True


async def refusal_message(client: VaultClient, err: VaultPermissionDenied) -> str:
    """A refused call explained: the token is invalid or expired, or it lacks a capability."""
    if not await token_valid(client):
        return f"the Vault token is invalid or expired ({err})"
    return denied_message(err)
