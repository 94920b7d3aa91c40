"""PURE: which Consul http check paths the mTLS sidecar can match exactly, and the URI to send.

An mTLS listener lets one request through without a client certificate: each check's exact
location (see ``nginx``). That only holds if nginx's exact match sees the path the check
sends, so the rules for such a path live here, apart from the text of nginx.conf: the planner
(``validate``) refuses a group with an unsafe check before anything is injected, and the
config writer calls the same rule, so the two can never disagree.
"""

from __future__ import annotations

import re

# A check path nginx can match exactly and quote safely: no percent-escapes (nginx matches the
# DECODED path, so "/a%20b" would never match), no "$" (variables), quotes, backslashes,
# braces (template delimiters), ";", "#" or whitespace.
_CHECK_PATH = re.compile(r"/[A-Za-z0-9._~!*'()+,=:@/-]*")
_CHECK_QUERY = re.compile(r"[A-Za-z0-9._~!*'()+,=:@/?&%-]*")
_CHECK_METHOD = re.compile(r"[A-Z]+")


class UnsafeCheck(ValueError):
    """An http check of an mTLS group whose method or path nginx cannot match exactly."""


def check_location(method: str, path: str) -> tuple[str, str]:
    """(the exact location path, the URI sent to the app) for one check; raises UnsafeCheck.

    The location is matched against nginx's normalised path, so a path nginx would normalise
    (``//``, ``.`` or ``..`` segments) could never match and is refused rather than silently
    leaving the check red.
    """
    if not path:
        raise UnsafeCheck("an http check has no Path (Nomad refuses such a check too)")
    location, _, query = path.partition("?")
    segments = location.split("/")[1:]
    if (
        not _CHECK_PATH.fullmatch(location)
        or not _CHECK_QUERY.fullmatch(query)
        or any(s in (".", "..") for s in segments)
        or "//" in location
    ):
        raise UnsafeCheck(
            f"http check path {path!r} cannot be matched exactly by the mTLS sidecar, which "
            "lets only that path through without a client certificate; use a plain path "
            "(letters, digits and -._~!*'()+,=:@/, no percent-escapes, no . or .. segments)"
        )
    if not _CHECK_METHOD.fullmatch(method):
        raise UnsafeCheck(f"http check method {method!r} is not an HTTP method name")
    return location, path
