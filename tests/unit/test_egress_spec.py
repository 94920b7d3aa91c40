"""`mesh.tls.upstreams` and `mesh.tls.allow`: parsing, defaults, and errors that name the key,
the value and what was expected."""

from __future__ import annotations

from typing import Any

import pytest

from crds_equivalent.egress import Provider, Upstream, UpstreamProtocol
from crds_equivalent.spec import SpecError, parse_group_spec


def group(meta: dict[str, str], provider: str | None = None) -> dict[str, Any]:
    service: dict[str, Any] = {"Name": "web", "PortLabel": "http"}
    if provider is not None:
        service["Provider"] = provider
    return {
        "Name": "web",
        "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
        "Services": [service],
        "Tasks": [{"Name": "app"}],
        "Meta": {"mesh.tls": "true", **meta},
    }


def spec_of(meta: dict[str, str], provider: str | None = None) -> Any:
    return parse_group_spec({"ID": "web"}, group(meta, provider))


def test_upstreams_parse_with_defaults_and_explicit_options() -> None:
    spec = spec_of({"mesh.tls.upstreams": " billing:9001 , search:9002/tcp@nomad,ledger:9003/http"})
    assert spec.upstreams == (
        Upstream(service="billing", port=9001),
        Upstream(
            service="search", port=9002, protocol=UpstreamProtocol.TCP, provider=Provider.NOMAD
        ),
        Upstream(service="ledger", port=9003, protocol=UpstreamProtocol.HTTP),
    )
    assert spec.upstreams[0].spelled() == "billing:9001/http@consul"


def test_the_default_provider_is_the_groups_own() -> None:
    assert spec_of({"mesh.tls.upstreams": "a:1"}, "nomad").upstreams[0].provider is Provider.NOMAD
    assert spec_of({"mesh.tls.upstreams": "a:1"}, "consul").upstreams[0].provider is Provider.CONSUL
    assert spec_of({"mesh.tls.upstreams": "a:1@consul"}, "nomad").upstreams[0].provider is (
        Provider.CONSUL
    )


def test_empty_values_mean_none() -> None:
    spec = spec_of({"mesh.tls.upstreams": " ", "mesh.tls.allow": ""})
    assert spec.upstreams == () and spec.allow == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "billing",
            "expected a comma-separated list of <service>:<port>[/http|/tcp][@consul|@nomad] "
            '("billing" is not one)',
        ),
        ("billing:9001,,x:2", '("" is not one)'),
        ("bad_name:1", '("bad_name:1" is not one)'),
        ("billing:0", "expected ports from 1 to 65535 ('billing:0' has 0)"),
        ("billing:70000", "expected ports from 1 to 65535 ('billing:70000' has 70000)"),
        ("billing:9001/udp", "expected protocol http or tcp ('billing:9001/udp' has 'udp')"),
        ("billing:9001@k8s", "expected provider consul or nomad ('billing:9001@k8s' has 'k8s')"),
        (
            "billing:9001, search:9001",
            'expected one upstream per port (port 9001 is given to "billing" and to "search")',
        ),
    ],
)
def test_bad_upstreams_name_the_key_the_value_and_the_form(value: str, expected: str) -> None:
    with pytest.raises(SpecError) as err:
        spec_of({"mesh.tls.upstreams": value})
    assert str(err.value).startswith(f'group "web": meta "mesh.tls.upstreams" = "{value}": ')
    assert expected in str(err.value)
    assert err.value.key == "mesh.tls.upstreams"


def test_allow_lists_service_names_lower_cased_once() -> None:
    spec = spec_of({"mesh.tls.mtls": "true", "mesh.tls.allow": "frontend, Reports,frontend"})
    assert spec.allow == ("frontend", "reports")


def test_allow_without_mtls_is_refused_not_ignored() -> None:
    with pytest.raises(SpecError) as err:
        spec_of({"mesh.tls.allow": "frontend"})
    assert str(err.value) == (
        'group "web": meta "mesh.tls.allow" = "frontend": expected "mesh.tls.mtls" = "true" as '
        "well: without client certificates the sidecar cannot tell callers apart"
    )


def test_allow_with_a_bad_name_says_which() -> None:
    with pytest.raises(SpecError) as err:
        spec_of({"mesh.tls.mtls": "true", "mesh.tls.allow": "frontend, bad.name"})
    assert 'meta "mesh.tls.allow" = "frontend, bad.name": expected a comma-separated list of ' in (
        str(err.value)
    )
    assert '("bad.name" is not one' in str(err.value)


def test_new_keys_are_not_read_when_the_group_is_not_meshed() -> None:
    tg = group({"mesh.tls": "false", "mesh.tls.upstreams": "nonsense", "mesh.tls.allow": "!"})
    assert parse_group_spec({"ID": "web"}, tg).upstreams == ()
