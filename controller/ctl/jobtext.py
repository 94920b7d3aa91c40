"""A job as text: Nomad's ``-output`` JSON layout and a unified diff between two such texts.

``render`` prints jobs this way and ``explain`` shows its planned change this way; one home
keeps the two byte-for-byte alike, so a diff from one can be compared with the other.
"""

from __future__ import annotations

import difflib
import json
from typing import Any


def pretty(value: Any) -> str:
    """Nomad's ``-output`` style: 4-space indent, unicode kept, trailing newline."""
    return json.dumps(value, indent=4, ensure_ascii=False) + "\n"


def diff(before: str, after: str, name: str) -> str:
    """A unified diff with git-style ``a/``/``b/`` names ("" when nothing changed)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile="a/" + name.lstrip("/"),
        tofile="b/" + name.lstrip("/"),
    )
    return "".join(lines)
