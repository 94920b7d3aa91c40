"""The JSON of the hot paths: Nomad's answers and event frames, the cache's packed values.

Decoding and encoding JSON was about a fifth of the controller's CPU per new job (event-stream
frames, cached jobs unpacked on a miss, response bodies); orjson does both several times faster
than the standard library. It is kept to this one module so that its few differences stay in
view: ``dumps`` returns UTF-8 bytes (no ``\\uXXXX`` escapes, no spaces: semantically the
standard library's compact output), dict keys that are not strings are written as strings as
``json.dumps`` does, and integers must fit in 64 bits (Nomad's indexes are uint64). ``loads``
takes bytes or str and raises ``DecodeError``, a ``ValueError`` like ``json.JSONDecodeError``.
Cold paths (config files, CLI output, pretty-printed documents) keep the standard library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

DecodeError: Final = orjson.JSONDecodeError

_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """One JSON document, parsed (``DecodeError`` when it is not one)."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (``TypeError`` for what JSON cannot hold).

    A copy of exactly its length: the bytes orjson returns keep the buffer it wrote into, at
    least 4 kB however short the text (orjson 3.13; tracemalloc and RSS both show ~4.1 kB for
    a 240-byte allocation). The cache holds such texts by the thousand while a LIST's pages
    arrive (each staged allocation and deployment) and for its hot jobs, so the buffer was
    most of what they cost; the copy is a memcpy."""
    return bytes(memoryview(orjson.dumps(value, option=_OPTIONS)))


# Log lines: datetimes and dataclasses go through ``default`` as the standard library's
# renderer sent them (repr), not orjson's own forms, so a field reads as it always has.
_LINE_OPTIONS: Final = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def dumps_line(value: Any, default: Callable[[Any], Any]) -> bytes:
    """``value`` as compact UTF-8 JSON, what JSON cannot hold given to ``default`` (a log line's
    renderer; ``TypeError`` still for integers past 64 bits)."""
    return orjson.dumps(value, default=default, option=_LINE_OPTIONS)
