"""Logging: JSON vs console, contextvars first, level filter, and secrets never written."""

from __future__ import annotations

import datetime
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from controller import logging as mesh_logging
from controller.logging import REDACTED, configure_logging, redact, redact_secrets, use_json

PEM_KEY = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBzV7x1secretkeymaterial\n-----END EC PRIVATE KEY-----"
)
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIBpublic\n-----END CERTIFICATE-----"
VAULT_TOKEN = "hvs.CAESIJ0vYW55dGhpbmctc2VjcmV0LXRva2Vu"
OPENBAO_TOKEN = "s.v3ZqYWx1ZXRva2VuLXRlc3Qx"
JWT = "eyJhbGciOiJFZERTQSJ9.eyJub21hZF9qb2JfaWQiOiJ3ZWIifQ.c2lnbmF0dXJl"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "NOMAD_TOKEN",
        "X-Vault-Token",
        "client_secret",
        "password",
        "private_key",
        "Authorization",
    ],
)
def test_sensitive_keys_are_masked(key: str) -> None:
    assert redact("value", key) == REDACTED
    assert redact({"nested": {key: "value"}}) == {"nested": {key: REDACTED}}


def test_ordinary_fields_and_absent_secrets_are_kept() -> None:
    assert redact("ns/job", "key") == "ns/job"
    assert redact(None, "token") is None  # "no token configured" is useful to see
    assert redact(3, "workers") == 3
    assert redact(PEM_CERT, "cert") == PEM_CERT  # certificates are public


def test_secrets_inside_values_are_masked() -> None:
    text = f"key:\n{PEM_KEY}\nchain:\n{PEM_CERT}"
    out = redact(text)
    assert "secretkeymaterial" not in out
    assert PEM_CERT in out
    assert "secretkey" not in redact(PEM_KEY[:60])  # a truncated block is masked too
    assert redact("X-Nomad-Token: abc-123 next") == f"X-Nomad-Token: {REDACTED} next"
    assert redact('{"X-Vault-Token": "s3cr3t"}') == '{"X-Vault-Token": "' + REDACTED + '"}'
    assert redact("Authorization: Bearer eyJhbGciOi") == f"Authorization: {REDACTED}"
    assert VAULT_TOKEN not in redact(f"renewing {VAULT_TOKEN}")
    for token in (OPENBAO_TOKEN, JWT):  # OpenBao's s. prefix; a workload identity
        assert redact(f"using {token} now") == f"using {REDACTED} now"
    assert redact("reconcilers.health.reconciler") == "reconcilers.health.reconciler"
    assert redact("https://bob:hunter2@vault:8200/v1") == f"https://bob:{REDACTED}@vault:8200/v1"
    assert redact([f"t={VAULT_TOKEN}", {"password": "x"}]) == [
        f"t={REDACTED}",
        {"password": REDACTED},
    ]
    assert redact(PEM_KEY.encode()) == "[REDACTED bytes]"


def test_processor_masks_every_field() -> None:
    out = redact_secrets(None, "info", {"event": f"got {VAULT_TOKEN}", "vault_token": "x"})
    assert out == {"event": f"got {REDACTED}", "vault_token": REDACTED}


def test_json_when_not_a_tty_with_context_level_and_time() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    structlog.contextvars.bind_contextvars(reconcile_id="r-1")
    structlog.get_logger().info("reconcile", key="ns/job", result="success")
    (line,) = lines(out)
    assert line["event"] == "reconcile"
    assert line["reconcile_id"] == "r-1"
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")
    assert structlog.get_config()["processors"][0] is structlog.contextvars.merge_contextvars


def test_console_on_a_tty_and_format_overrides() -> None:
    tty = Tty()
    configure_logging(stream=tty)
    structlog.get_logger().info("hello", n=1)
    assert "hello" in tty.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(tty.getvalue())
    assert use_json("json", Tty())
    assert not use_json("console", io.StringIO())
    forced = Tty()
    configure_logging(stream=forced, fmt="json")
    structlog.get_logger().info("hello")
    assert lines(forced)[0]["event"] == "hello"


def test_level_filter() -> None:
    out = io.StringIO()
    configure_logging(stream=out, level="warning")
    log = structlog.get_logger()
    log.info("quiet")
    log.warning("loud")
    logging.getLogger("aiohttp.access").info("quiet too")
    assert [line["event"] for line in lines(out)] == ["loud"]
    with pytest.raises(ValueError, match="log level"):
        configure_logging(stream=out, level="verbose")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_no_secret_reaches_the_output_in_either_format(fmt: str) -> None:
    out = io.StringIO()
    configure_logging(stream=out, fmt=fmt, level="debug")
    log = structlog.get_logger()
    log.info("settings", token="nomad-tok-123", headers={"X-Consul-Token": "consul-tok-456"})
    log.debug("rendered", body=PEM_KEY)
    try:
        raise RuntimeError(f"vault said no to {VAULT_TOKEN}")
    except RuntimeError:
        log.exception("call failed")
    logging.getLogger("hvac").warning("request with X-Vault-Token: %s", "plain-tok-789")
    text = out.getvalue()
    for secret in [
        "nomad-tok-123",
        "consul-tok-456",
        "secretkeymaterial",
        VAULT_TOKEN,
        "plain-tok-789",
    ]:
        assert secret not in text
    assert "call failed" in text
    assert "RuntimeError" in text  # the traceback is kept, only the secret is masked


# Whole secrets of every shape the patterns look for, their pieces and near misses, to build
# lines from.
FRAGMENTS = [
    PEM_KEY, VAULT_TOKEN, OPENBAO_TOKEN, JWT, "https://ci:hunter2@nomad.example/",
    "X-Nomad-Token: abc-123", "authorization=Basic dXNlcg",
    "-----BEGIN ", "RSA ", "PRIVATE KEY-----", "-----END ", "x-nomad-token", "X-Vault-Token",
    "Authorization", ": ", "=", "Bearer ", '"', "hvs.", "s.", "b.", "eyJ", ".", "://", "user",
    ":", "@", "/", " ", "\n", "A" * 21, "_-", "token", "ü",
]  # fmt: skip


def masked_by_every_pattern(text: str) -> str:
    """What the five patterns give when each is run, whether or not the quick scan finds
    anything: ``redact_text`` must always give the same."""
    text = mesh_logging._PEM_PRIVATE.sub("[REDACTED PRIVATE KEY]", text)
    text = mesh_logging._HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = mesh_logging._VAULT_TOKEN.sub(REDACTED, text)
    text = mesh_logging._JWT.sub(REDACTED, text)
    return mesh_logging._URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)


@settings(max_examples=500)
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=24))
def test_the_quick_scan_never_lets_a_secret_through(parts: list[str]) -> None:
    text = "".join(parts)
    assert mesh_logging.redact_text(text) == masked_by_every_pattern(text)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["event", "key", "error", "token", "headers", "n", "reason"]),
        st.one_of(
            st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join),
            st.integers(),
            st.none(),
            st.dictionaries(st.sampled_from(["password", "x"]), st.sampled_from(FRAGMENTS)),
        ),
    )
)
def test_the_one_scan_of_a_whole_line_masks_what_field_by_field_masking_does(
    fields: dict[str, object],
) -> None:
    expected = {k: redact(v, k) for k, v in fields.items()}
    assert redact_secrets(None, "info", dict(fields)) == expected


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class Speaks:
    def __structlog__(self) -> str:
        return "speaks"


def test_json_lines_hold_what_structlogs_own_renderer_wrote() -> None:
    """orjson renders the line; its fields read as the standard library's renderer wrote them
    (a datetime or an object by its repr, ``__structlog__`` honoured, a 70-bit integer kept)."""
    event = {
        "event": "reconcile ü",
        "n": 3,
        "x": 0.25,
        "ok": True,
        "none": None,
        "when": datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC),
        "obj": Opaque(),
        "speaks": Speaks(),
        "nested": {"a": [1, "b"], 2: "two"},
        "big": 2**70,
    }
    reference = json.loads(structlog.processors.JSONRenderer()(None, "info", dict(event)))
    ours = mesh_logging.render_json(None, "info", dict(event))
    assert isinstance(ours, str) and "\n" not in ours
    assert json.loads(ours) == reference
    del event["big"]
    ours = mesh_logging.render_json(None, "info", dict(event))  # orjson's path, not the fallback
    assert json.loads(ours) == {k: v for k, v in reference.items() if k != "big"}
