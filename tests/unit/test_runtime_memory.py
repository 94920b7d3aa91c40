"""The C heap trim: found on this (glibc) platform, and harmless to call at any time."""

from __future__ import annotations

from controller.runtime.memory import malloc_trim


def test_glibc_trim_is_found_and_releases_freed_blocks() -> None:
    trim = malloc_trim()
    assert trim is not None  # the image and CI run glibc (Debian)
    blocks = [bytearray(4096) for _ in range(4_000)]  # over 512 B: glibc's, not pymalloc's
    del blocks[:-1]  # freed below a live block: only a trim gives these pages back
    assert trim() == 1
    assert trim() in (0, 1)
