"""Structured logs that are safe to ship: JSON for machines, console for people, no secrets.

JSON when stdout is not a TTY (a Nomad task, CI), a console renderer when it is; MESH_LOG_FORMAT
overrides. ``merge_contextvars`` runs first so per-reconcile context (``reconcile_id``, key)
reaches every line. The last step before rendering is ``redact_secrets``: values under
token/secret/password-like keys, PEM private-key blocks, X-*-Token/Authorization header values,
Vault tokens and URL passwords are masked wherever they appear — including exception text and
the records of libraries that log through the standard ``logging`` module (aiohttp, hvac).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

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
    if type(text) is str and _SUSPECT.search(text) is None:
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


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every field (run it after exception formatting)."""
    return {k: redact(v, k) for k, v in event_dict.items()}


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
        renderer = structlog.processors.JSONRenderer()
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
