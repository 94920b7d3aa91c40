"""The trust view: which issuers count, what anchors chains, how a Vault outage is ridden out."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from controller.runtime.clock import FakeClock
from controller.tlsprobe import subject_key_id
from controller.vault import VaultUnavailable
from controller.vault.trust import TrustUnavailable, VaultTrust, mesh_trust
from tests.support.health_world import leaf
from tests.support.x509 import NOW, Ca, issue


def pem(ca: Ca) -> str:
    return ca.cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def cas() -> dict[str, Ca]:
    root = issue("Root", None, ca=True, end=NOW + dt.timedelta(days=3650))
    old_root = issue("Old Root", None, ca=True, end=NOW + dt.timedelta(days=365))
    return {
        "root": root,
        "old_root": old_root,
        "v1": issue("Int", root, ca=True, end=NOW + dt.timedelta(days=20)),
        "v2": issue("Int", root, ca=True, end=NOW + dt.timedelta(days=1800)),
        "gone": issue(
            "Int", root, ca=True, start=NOW - dt.timedelta(days=9), end=NOW - dt.timedelta(days=1)
        ),
    }


class FakeVault:
    """Answers the reads VaultTrust makes, from a table of issuers."""

    def __init__(self, cas: dict[str, Ca]) -> None:
        self.down = False
        self.reads = 0
        self.default = "v2"
        self.issuers: dict[str, tuple[Ca, str]] = {
            "v1": (cas["v1"], "k1"),
            "v2": (cas["v2"], "k2"),
            "gone": (cas["gone"], "k0"),
            "root-copy": (cas["old_root"], ""),
        }
        self.root = cas["root"]

    async def read(self, path: str) -> dict[str, Any] | None:
        if self.down:
            raise VaultUnavailable(f"read {path}: Vault is sealed")
        self.reads += 1
        if path == "pki/cert/ca":
            return {"data": {"certificate": pem(self.root)}}
        if path == "pki_int/config/issuers":
            return {"data": {"default": self.default}}
        ref = path.removeprefix("pki_int/issuer/")
        ca, key = self.issuers[ref]
        return {"data": {"issuer_id": ref, "key_id": key, "certificate": pem(ca), "ca_chain": []}}

    async def list(self, path: str) -> list[str]:
        if self.down:
            raise VaultUnavailable(f"list {path}: Vault is sealed")
        return list(self.issuers)


async def test_trusted_issuers_anchors_and_matching(cas: dict[str, Ca]) -> None:
    vault = FakeVault(cas)
    trust = await VaultTrust(vault, clock=FakeClock(wall=NOW)).get()  # type: ignore[arg-type]
    assert sorted(i.issuer_id for i in trust.issuers) == ["v1", "v2"]  # expired, key-less out
    assert trust.default is not None and trust.default.issuer_id == "v2"
    assert pem(cas["root"]).strip() in trust.anchors_pem
    assert pem(cas["old_root"]).strip() in trust.anchors_pem  # older root kept for verification
    assert trust.ca_not_after == cas["v2"].cert.not_valid_after_utc
    on_v1 = leaf(aki=subject_key_id(cas["v1"].cert))
    found = trust.issuer_of(on_v1)
    assert found is not None and found.issuer_id == "v1" and not found.is_default
    assert trust.issuer_of(leaf(aki=subject_key_id(cas["gone"].cert))) is None
    no_aki = replace(on_v1, authority_key_id="", issuer="CN=Int")
    assert trust.issuer_of(no_aki) is not None


def test_ca_expiry_is_the_sooner_of_default_issuer_and_root(cas: dict[str, Ca]) -> None:
    trust = mesh_trust(pem(cas["old_root"]), [], NOW)
    assert trust.default is None
    assert trust.ca_not_after == cas["old_root"].cert.not_valid_after_utc


async def test_cached_between_refreshes_and_stale_only_up_to_a_limit(cas: dict[str, Ca]) -> None:
    vault = FakeVault(cas)
    clock = FakeClock(wall=NOW)
    source = VaultTrust(vault, refresh=60, max_stale=300, clock=clock)  # type: ignore[arg-type]
    first = await source.get()
    reads = vault.reads
    await clock.advance(30)
    assert await source.get() is first and vault.reads == reads
    vault.default = "v1"
    await clock.advance(31)
    switched = await source.get()
    assert switched.default is not None and switched.default.issuer_id == "v1"

    vault.down = True
    await clock.advance(200)
    assert await source.get() is switched  # Vault blip: last answer still used
    await clock.advance(200)
    with pytest.raises(TrustUnavailable, match="Vault is sealed"):
        await source.get()
