"""leaf_info: the facts of a served leaf, read from its DER, with the names leaves share held
once (the health check keeps one LeafInfo per served instance between its passes)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from controller.x509 import leaf_info
from tests.support.x509 import Ca, issue

ROOT = issue("root", None, ca=True)
INTERMEDIATE = issue("int", ROOT, ca=True)


def der(leaf: Ca) -> bytes:
    return leaf.cert.public_bytes(serialization.Encoding.DER)


def web_leaf() -> Ca:
    return issue("web.service.consul", INTERMEDIATE, ca=False, sans=("web.service.consul",))


def test_the_facts_of_a_leaf() -> None:
    leaf = web_leaf()
    info = leaf_info(der(leaf))
    assert (info.subject, info.issuer) == ("CN=web.service.consul", "CN=int")
    assert info.dns_names == ("web.service.consul",)
    assert info.not_after == leaf.cert.not_valid_after_utc
    assert int(info.serial.replace(":", ""), 16) == leaf.cert.serial_number


def test_two_leaves_of_one_service_share_their_names_not_their_serials() -> None:
    one, two = leaf_info(der(web_leaf())), leaf_info(der(web_leaf()))
    assert one.issuer is two.issuer and one.subject is two.subject
    assert one.authority_key_id is two.authority_key_id
    assert one.dns_names[0] is two.dns_names[0]
    assert one.serial != two.serial
