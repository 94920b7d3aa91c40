"""Atomic file writes with explicit permissions, the way a template destination is replaced.

A reader (nginx reloading on SIGHUP) must never see half a certificate bundle, and a key
bundle must never exist, even briefly, with wider permissions than asked: write a temp file
in the same directory with the final mode, fsync, then rename over the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomic(
    path: str, content: str | bytes, mode: int = 0o644, uid: int = -1, gid: int = -1
) -> bool:
    """Replace `path` with `content` (mode `mode`); False when it already held exactly that."""
    data = content.encode() if isinstance(content, str) else content
    try:
        with open(path, "rb") as f:
            same = f.read() == data
        st = os.stat(path)
        owned = (uid < 0 or st.st_uid == uid) and (gid < 0 or st.st_gid == gid)
        if same and (st.st_mode & 0o7777) == mode and owned:
            return False
    except OSError:
        pass
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmpl-", dir=directory)
    try:
        os.fchmod(fd, mode)
        if uid >= 0 or gid >= 0:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True
