"""Unit tests for the twin's wire helpers: Go durations, times, omitempty, decoding."""

from __future__ import annotations

import json

import pytest

from devstack.godur import format_ns as format_go_duration
from devstack.godur import parse as parse_go_duration
from devstack.nomad.codec import omitempty, rfc3339
from devstack.nomad.decode import DecodeError, decode_request
from tests.support import paths

FIXTURES = paths.FIXTURES / "nomad"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("15s", 15 * 10**9),
        ("1m", 60 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("300ms", 3 * 10**8),
        ("1.5s", 1_500_000_000),
        ("0", 0),
        ("2h0m0s", 7200 * 10**9),
    ],
)
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "s", ".s", "-"])
def test_parse_go_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(bad)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (15 * 10**9, "15s"),
        (60 * 10**9, "1m0s"),
        (3600 * 10**9, "1h0m0s"),
        (0, "0s"),
        (1_500_000_000, "1.5s"),
        (90 * 10**9, "1m30s"),
        (300_000_000, "300ms"),
    ],
)
def test_format_go_duration(ns: int, text: str) -> None:
    assert format_go_duration(ns) == text


def test_zero_time_is_null_and_others_rfc3339nano() -> None:
    assert rfc3339(0) is None
    assert rfc3339(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert rfc3339(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_omitempty_drops_every_zero_value_but_keeps_true_and_nonzero() -> None:
    got = omitempty(
        {"A": "", "B": 0, "C": False, "D": None, "E": [], "F": {}, "G": True, "H": 1, "I": "x"}
    )
    assert got == {"G": True, "H": 1, "I": "x"}


def test_decode_is_case_insensitive_and_ignores_unknown_fields() -> None:
    body = {
        "job": {"id": "web", "TASKGROUPS": [{"name": "g", "Bogus": 1}], "Nope": True},
        "enforceindex": True,
    }
    got = decode_request("JobRegisterRequest", json.dumps(body).encode())
    assert got == {"Job": {"ID": "web", "TaskGroups": [{"Name": "g"}]}, "EnforceIndex": True}


def test_string_duration_is_go_unmarshal_error() -> None:
    body = {"Job": {"ID": "x", "TaskGroups": [{"Tasks": [{"KillTimeout": "10s"}]}]}}
    with pytest.raises(DecodeError) as err:
        decode_request("JobRegisterRequest", json.dumps(body).encode())
    assert str(err.value) == (
        "json: cannot unmarshal string into Go struct field "
        "Task.Job.TaskGroups.Tasks.KillTimeout of type time.Duration"
    )


def test_empty_body_is_request_body_is_empty() -> None:
    with pytest.raises(DecodeError, match=r"^Request body is empty$"):
        decode_request("JobRegisterRequest", b"  ")


def test_real_register_payload_with_nulls_decodes() -> None:
    raw = (FIXTURES / "register-example-short.json").read_bytes()
    got = decode_request("JobRegisterRequest", raw)
    job = got["Job"]
    assert job["ID"] == "example"
    assert "Region" not in job  # null leaves the field unset
    assert job["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0] == {
        "Label": "db",
        "Value": 0,
        "To": 6379,
        "HostNetwork": "",
    }
