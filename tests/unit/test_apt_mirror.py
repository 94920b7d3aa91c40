"""image/apt_mirror.py: the Debian mirror debootstrap uses is the one apt is configured with."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "image" / "apt_mirror.py"


@pytest.fixture(scope="module")
def mirror() -> ModuleType:
    spec = importlib.util.spec_from_file_location("apt_mirror", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""


def apt_tree(tmp: Path, files: dict[str, str]) -> Path:
    (tmp / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp / name).write_text(text)
    return tmp


def test_deb822_suite_and_trailing_slash(mirror: ModuleType, tmp_path: Path) -> None:
    apt = apt_tree(tmp_path, {"sources.list.d/debian.sources": DEB822})
    assert mirror.choose(mirror.entries(apt), "bookworm", None) == "http://mirror.example/debian"


def test_security_updates_disabled_and_src_are_never_chosen(
    mirror: ModuleType, tmp_path: Path
) -> None:
    apt = apt_tree(
        tmp_path,
        {
            "sources.list": (
                "deb-src http://src.example/debian bookworm main\n"
                "deb http://sec.example/debian-security bookworm-security main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://contrib.example/debian bookworm contrib\n"
            ),
            "sources.list.d/off.sources": (
                "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"
                "Components: main\nEnabled: no\n"
            ),
            "sources.list.d/other.list": "deb [arch=amd64] http://one.example/debian bookworm main",
        },
    )
    assert mirror.choose(mirror.entries(apt), "bookworm", None) == "http://one.example/debian"


def test_host_release_entry_serves_another_release(mirror: ModuleType, tmp_path: Path) -> None:
    apt = apt_tree(
        tmp_path, {"sources.list.d/debian.sources": DEB822.replace("bookworm", "trixie")}
    )
    found = mirror.entries(apt)
    assert mirror.choose(found, "bookworm", "trixie") == "http://mirror.example/debian"
    assert mirror.choose(found, "bookworm", None) is None


def test_host_release_only_on_debian(mirror: ModuleType, tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text("ID=debian\nVERSION_CODENAME=trixie\n")
    assert mirror.host_release(os_release) == "trixie"
    os_release.write_text("ID=ubuntu\nVERSION_CODENAME=noble\n")
    assert mirror.host_release(os_release) is None
