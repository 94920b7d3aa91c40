"""VaultClient's hvac side, now that hvac and requests are imported only when it is used: its
failures still arrive as controller.vault.errors, a bug in the caller still raises as itself,
and the hvac client is made once, on first use, for the connection's address and token."""

from __future__ import annotations

import hvac.exceptions as hx
import pytest
import requests

from controller.vault import VaultClient, VaultConnection
from controller.vault.errors import VaultPermissionDenied, VaultUnavailable


def client() -> VaultClient:
    return VaultClient(VaultConnection("http://127.0.0.1:1", "tok-unit"))


def raising(exc: BaseException) -> None:
    raise exc


def test_hvac_and_requests_failures_become_vault_errors() -> None:
    vault = client()
    with pytest.raises(VaultPermissionDenied, match="patch x: permission denied"):
        vault.call_sync("patch x", raising, hx.Forbidden("no"))
    with pytest.raises(VaultUnavailable, match="patch y: ConnectionError"):
        vault.call_sync("patch y", raising, requests.ConnectionError("refused"))


def test_other_exceptions_are_not_translated() -> None:
    with pytest.raises(KeyError, match="bug"):
        client().call_sync("patch z", raising, KeyError("bug"))


def test_the_hvac_client_is_made_once_for_the_connection() -> None:
    vault = client()
    first = vault.hvac
    assert first is vault.hvac
    assert (first.url, first.token) == ("http://127.0.0.1:1", "tok-unit")
