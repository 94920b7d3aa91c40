"""MeshSpec parsing: effective meta per group, defaults, and errors that name what to fix."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crds_equivalent.spec import (
    DEFAULT_TTL_SECONDS,
    MeshSpec,
    Mode,
    SpecError,
    TlsProtocol,
    effective_meta,
    parse_group_spec,
    parse_job_specs,
)


def group(name: str = "web", meta: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    tg: dict[str, Any] = {
        "Name": name,
        "Networks": [
            {
                "Mode": "bridge",
                "DynamicPorts": [{"Label": "http", "To": 8080}, {"Label": "admin", "To": 9000}],
                "ReservedPorts": [{"Label": "metrics", "Value": 9100}],
            }
        ],
        "Services": [{"Name": "web", "PortLabel": "http"}],
        "Tasks": [{"Name": "app", "Services": [{"Name": "web-admin", "PortLabel": "admin"}]}],
        "Meta": meta,
    }
    tg.update(extra)
    return tg


def job(meta: dict[str, str] | None = None, *groups: dict[str, Any]) -> dict[str, Any]:
    return {"ID": "web", "Meta": meta, "TaskGroups": list(groups) or [group()]}


def test_unflagged_group_is_not_meshed_and_other_keys_are_ignored() -> None:
    spec = parse_group_spec(job({"mesh.tls.mode": "nonsense"}), group())
    assert spec == MeshSpec(group="web")


def test_defaults_front_every_port_a_service_uses() -> None:
    spec = parse_group_spec(job({"mesh.tls": "true"}), group())
    assert spec.enabled
    assert spec.ports == ("http", "admin")  # group services first, then task services
    assert spec.mode is Mode.STRICT
    assert spec.protocol is TlsProtocol.HTTP
    assert spec.ttl_seconds == DEFAULT_TTL_SECONDS
    assert spec.sans == ()
    assert spec.mtls is False


def test_group_meta_overrides_job_meta() -> None:
    j = job({"mesh.tls": "true", "mesh.tls.mode": "strict"})
    spec = parse_group_spec(j, group(meta={"mesh.tls.mode": "permissive"}))
    assert spec.mode is Mode.PERMISSIVE
    off = parse_group_spec(j, group(meta={"mesh.tls": "false"}))
    assert off.enabled is False


def test_effective_meta_tolerates_null_meta() -> None:
    assert effective_meta({"Meta": None}, {"Meta": {"a": "1"}}) == {"a": "1"}


def test_all_keys_parsed() -> None:
    meta = {
        "mesh.tls": "T",
        "mesh.tls.ports": "admin, metrics",
        "mesh.tls.mode": "permissive",
        "mesh.tls.protocol": "tcp",
        "mesh.tls.ttl": "1h30m",
        "mesh.tls.sans": "api.example.com, API.example.com,web.internal",
        "mesh.tls.mtls": "1",
    }
    spec = parse_group_spec(job(meta), group())
    assert spec.ports == ("admin", "metrics")
    assert spec.protocol is TlsProtocol.TCP
    assert spec.ttl_seconds == 5400
    assert spec.sans == ("api.example.com", "web.internal")
    assert spec.mtls is True


def test_default_ttl_comes_from_the_caller() -> None:
    spec = parse_group_spec(job({"mesh.tls": "true"}), group(), default_ttl_seconds=7200)
    assert spec.ttl_seconds == 7200


@pytest.mark.parametrize(
    ("key", "value", "expected_fragment"),
    [
        ("mesh.tls", "yes", "a boolean"),
        ("mesh.tls.mode", "STRICT", "one of strict, permissive"),
        ("mesh.tls.protocol", "grpc", "one of http, tcp"),
        ("mesh.tls.ttl", "30m", "at least 1h"),
        ("mesh.tls.ttl", "3 days", "a Go duration"),
        ("mesh.tls.ports", "http,nope", 'unknown label "nope"'),
        ("mesh.tls.ports", "http,,admin", "comma-separated list of port labels"),
        ("mesh.tls.sans", "ok.example, bad_name!", '"bad_name!" is not one'),
        ("mesh.tls.mtls", "maybe", "a boolean"),
        ("mesh.tls.mdoe", "strict", "a known mesh key"),
    ],
)
def test_invalid_values_name_group_key_value_and_expectation(
    key: str, value: str, expected_fragment: str
) -> None:
    meta = {"mesh.tls": "true", key: value}
    with pytest.raises(SpecError) as caught:
        parse_group_spec(job(meta), group())
    err = caught.value
    assert (err.group, err.key, err.value) == ("web", key, value)
    message = str(err)
    assert message.startswith(f'group "web": meta "{key}" = ')
    assert expected_fragment in message


def test_non_string_meta_value_is_an_error() -> None:
    with pytest.raises(SpecError, match="expected a string"):
        parse_group_spec(job({"mesh.tls": True}), group())  # type: ignore[dict-item]


def test_huge_values_are_cut_in_messages() -> None:
    with pytest.raises(SpecError) as caught:
        parse_group_spec(job({"mesh.tls": "x" * 100_000}), group())
    assert len(str(caught.value)) < 400


def test_parse_job_specs_covers_every_group() -> None:
    j = job({"mesh.tls": "true"}, group("a"), group("b", meta={"mesh.tls": "false"}))
    specs = parse_job_specs(j)
    assert set(specs) == {"a", "b"}
    assert specs["a"].enabled and not specs["b"].enabled


def test_meshed_group_without_services_fronts_nothing() -> None:
    tg = group(Services=None, Tasks=[{"Name": "app"}])
    assert parse_group_spec(job({"mesh.tls": "true"}), tg).ports == ()


def test_numeric_service_ports_are_not_port_labels() -> None:
    tg = group(Services=[{"Name": "web", "PortLabel": "8080"}], Tasks=[])
    assert parse_group_spec(job({"mesh.tls": "true"}), tg).ports == ()


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=8))
def test_arbitrary_meta_parses_or_fails_with_spec_error(meta: dict[str, str]) -> None:
    meta = {**meta, "mesh.tls": "true"}
    try:
        spec = parse_group_spec(job(meta), group())
    except SpecError as err:
        assert err.key in meta
    else:
        assert spec.enabled


def test_an_unknown_port_label_of_any_length_gives_a_short_error() -> None:
    """Found by the fuzz run of make chaos: the label was quoted whole in the expectation."""
    job = {
        "ID": "x",
        "TaskGroups": [
            {
                "Name": "g",
                "Meta": {"mesh.tls": "true", "mesh.tls.ports": "a" * 200_000},
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
            }
        ],
    }
    with pytest.raises(SpecError) as raised:
        parse_job_specs(job)
    text = str(raised.value)
    assert len(text) < 600 and 'meta "mesh.tls.ports"' in text and "known: http" in text
