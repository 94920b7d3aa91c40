"""Where a job's status record lives: the Variable path of (namespace, job), and back.

Nomad allows only ``[a-zA-Z0-9-_~/]{1,128}`` in a Variable path, while namespaces and job IDs
may hold dots, slashes and any UTF-8; so each segment is escaped reversibly, and an over-long
path is shortened with a hash (the key then travels in the record's Items).
"""

from __future__ import annotations

import hashlib
import re
import sys

from crds_equivalent.jobkey import JobKey
from crds_equivalent.keys import VAR_STATUS_PREFIX, status_path

_MAX_PATH = 128  # Nomad: ^[a-zA-Z0-9-_~/]{1,128}$
_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_ESCAPE = re.compile(r"~([0-9a-f]{2})")


def encode_segment(value: str) -> str:
    """Make a namespace or job ID a valid Variable path segment (reversibly): characters
    outside ``[A-Za-z0-9_-]`` (dots, slashes, ``~``) become ``~xx`` per UTF-8 byte."""
    out = []
    for ch in value:
        if _PLAIN.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"~{b:02x}" for b in ch.encode())
    return "".join(out)


def decode_segment(value: str) -> str:
    """Inverse of :func:`encode_segment`."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(value):
        out += value[pos : match.start()].encode()
        out.append(int(match.group(1), 16))
        pos = match.end()
    out += value[pos:].encode()
    return out.decode("utf-8", "replace")


def path_for(namespace: str, job: str) -> str:
    """The record's path; over-long IDs are shortened with a hash (the key is then in Items).

    Interned: every call builds the string anew, and the store keeps what it is given (its
    slot table's key, the flush schedule's entries, a pending write), so each job held two or
    three equal copies of its path (~80 bytes each). One shared string per job instead; an
    interned string is freed with its last reference, so a removed job's path does not stay."""
    path = status_path(encode_segment(namespace), encode_segment(job))
    if len(path) > _MAX_PATH:
        digest = hashlib.sha256(f"{namespace}\x00{job}".encode()).hexdigest()[:16]
        head = status_path(encode_segment(namespace), "")
        path = head + encode_segment(job)[: _MAX_PATH - len(head) - 18] + "~~" + digest
    return sys.intern(path)


def key_of(path: str) -> JobKey | None:
    """(namespace, job) from a record path; None when the path is hashed or not a record."""
    rest = path.removeprefix(VAR_STATUS_PREFIX + "/")
    if rest == path or "~~" in rest or rest.count("/") != 1:
        return None
    ns, job = rest.split("/")
    return JobKey.of(decode_segment(ns), decode_segment(job))


def is_hashed(path: str) -> bool:
    """The path was shortened: only the record's Items say which job it belongs to."""
    return "~~" in path
