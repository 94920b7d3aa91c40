"""Structured logs that are safe to ship: JSON for machines, console for people, no secrets.

JSON when stdout is not a TTY (a Nomad task, CI), a console renderer when it is; MESH_LOG_FORMAT
overrides. ``merge_contextvars`` runs first so per-reconcile context (``reconcile_id``, key)
reaches every line. The last step before rendering is ``redact_secrets``: values under
token/secret/password-like keys, PEM private-key blocks, X-*-Token/Authorization header values,
Vault tokens and URL passwords are masked wherever they appear — including exception text and
the records of libraries that log through the standard ``logging`` module (aiohttp, hvac).

A line is written for every action and warning of every reconcile, so the pipeline is kept
cheap (it was ~26 µs a line, most of it redaction scans and the standard library's JSON): the
fields of an ordinary line are scanned for secrets in one pass over all their text, and JSON is
rendered by orjson (``controller.runtime.jsonwire``) — one compact object per line, same keys.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from controller.runtime import jsonwire

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"token|secret|passw(or)?d|passphrase|private[_-]?key|authorization|api[_-]?key"
    r"|credential|cookie",
    re.IGNORECASE,
)
_PEM_PRIVATE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL
)
_HEADER = re.compile(
    r"(?i)(\b(?:x-(?:nomad|vault|consul)-token|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:bearer|basic)\s+)?[^\s\"',;}]+"
)
# Vault's hvs./hvb./hvr. and OpenBao's s./b./r. token prefixes; a JWT (a workload identity).
_VAULT_TOKEN = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")
# Where any of the five patterns above could match, this matches too (each alternative is one
# of them or a prefix of one), so text it finds nothing in has nothing to mask: one scan
# instead of five for the ordinary line. Every reconcile writes log lines, and the five scans
# of each of their strings were a visible part of the controller's CPU in a profile.
_SUSPECT = re.compile(
    r"-----BEGIN"
    r"|(?i:\b(?:x-(?:nomad|vault|consul)-token|authorization))"
    r"|\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}"
    r"|\beyJ"
    r"|://[^/\s:@]+:"
)


def suspect(text: str) -> bool:
    """Could ``text`` hold a secret? False only where ``_SUSPECT`` finds nothing.

    Python's ``re`` tries every alternative at every position of the text: ~9 µs for an ordinary
    line's 120 characters, most of the pipeline's cost. Each alternative needs a literal that
    a substring test finds in C for a tenth of that — "-----BEGIN", a header name ending in
    "token" or "authorization", "s."/"b."/"r.", "eyJ", "://" — so the regex runs only where
    one is present. Case-insensitive matching of non-ASCII text has exceptions ``lower`` does
    not share (the Kelvin sign matches "k"), so such text always goes to the regex."""
    if not text.isascii():
        return _SUSPECT.search(text) is not None
    if "." in text and ("s." in text or "b." in text or "r." in text):
        return _SUSPECT.search(text) is not None
    if "-----BEGIN" in text or "eyJ" in text or "://" in text:
        return _SUSPECT.search(text) is not None
    lowered = text.lower()
    if "token" in lowered or "authorization" in lowered:
        return _SUSPECT.search(text) is not None
    return False


# Field names are few (the code's own) and asked about on every line: each is judged once.
_KEY_VERDICTS: dict[str, bool] = {}
_KEY_VERDICTS_MAX = 4096  # logged mappings may bring names of their own; past this, not kept

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def redact_text(text: str) -> str:
    """Mask secrets inside free text."""
    if type(text) is str and not suspect(text):
        return text
    text = _PEM_PRIVATE.sub("[REDACTED PRIVATE KEY]", text)
    text = _HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _VAULT_TOKEN.sub(REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)


def sensitive_key(key: str) -> bool:
    """A value logged under ``key`` is a secret, whatever it looks like."""
    verdict = _KEY_VERDICTS.get(key)
    if verdict is None:
        verdict = _SENSITIVE_KEY.search(key) is not None
        if len(_KEY_VERDICTS) < _KEY_VERDICTS_MAX:
            _KEY_VERDICTS[key] = verdict
    return verdict


def redact(value: Any, key: str | None = None) -> Any:
    """``value`` with secrets masked; ``key`` is the name it is logged under."""
    if key is not None and value is not None and sensitive_key(key):
        return REDACTED
    kind = type(value)
    if kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray):
        return "[REDACTED bytes]" if b"PRIVATE KEY" in value else value
    if isinstance(value, MutableMapping | dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    return value


_PLAIN = (int, float, bool, type(None))


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every field (run it after exception formatting).

    An ordinary line is flat: strings and numbers under names that are not secret. Its strings
    are joined and scanned once (a match inside one of them is a match inside the joined text:
    the patterns look at a word boundary at most, and the newline that joins is not a word
    character); only a line with a suspect, a secret name or a nested value is redacted field
    by field."""
    texts: list[str] = []
    for key, value in event_dict.items():
        kind = type(value)
        if kind is str:
            texts.append(value)
        elif kind not in _PLAIN:
            return {k: redact(v, k) for k, v in event_dict.items()}
        if value is not None and sensitive_key(key):
            return {k: redact(v, k) for k, v in event_dict.items()}
    if not suspect("\n".join(texts)):
        return event_dict
    return {k: redact(v, k) for k, v in event_dict.items()}


def _fallback(value: Any) -> Any:
    """What JSON cannot hold, as structlog's JSONRenderer writes it: ``__structlog__()``, else
    ``repr``."""
    method = getattr(value, "__structlog__", None)
    return method() if callable(method) else repr(value)


def render_json(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    """structlog processor: the line as one compact JSON object. orjson refuses integers past
    64 bits, which the standard library writes; a log line must never fail, so it does."""
    try:
        return jsonwire.dumps_line(event_dict, _fallback).decode()
    except TypeError:
        return json.dumps(event_dict, default=_fallback)


def _pre_chain() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        redact_secrets,
    ]


def use_json(fmt: Literal["auto", "json", "console"] | str, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    cache: bool = False,
) -> None:
    """Configure structlog and the stdlib root logger to write to ``stream`` (stdout).

    ``cache`` caches loggers on first use (faster; leave it off in tests, where it defeats
    ``structlog.testing.capture_logs``).
    """
    out = stream if stream is not None else sys.stdout
    lvl = LEVELS.get(level.lower())
    if lvl is None:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    as_json = use_json(fmt, out)
    renderer: Processor
    if as_json:
        renderer = render_json
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=bool(getattr(out, "isatty", lambda: False)()),
            exception_formatter=structlog.dev.plain_traceback,
        )
    structlog.configure(
        processors=[*_pre_chain(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_pre_chain()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
