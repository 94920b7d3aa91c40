"""Print the Debian mirror this machine's apt uses, for `debootstrap` (image/debian-base.sh).

    python3 image/apt_mirror.py bookworm      # -> e.g. http://deb.debian.org/debian

Reads /etc/apt/sources.list and /etc/apt/sources.list.d/ (one-line `.list` files and deb822
`.sources` files). The first enabled `deb` entry with the `main` component that carries the
wanted suite wins; failing that, on a Debian host, the first one that carries the host's own
release (one archive carries every release). Security and update suites are never chosen. The
repository names no mirror: the one apt is configured with is the one known to be reachable.
Exit 1 with a message when there is none (then set DEBIAN_MIRROR).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

APT = Path("/etc/apt")
OS_RELEASE = Path("/etc/os-release")


@dataclass(frozen=True)
class Entry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def parse_one_line(text: str) -> list[Entry]:
    """`deb [options] URI suite component...` lines; deb-src and comments are ignored."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # [arch=amd64 signed-by=...]
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            out.append(Entry(words[1], (words[2],), tuple(words[3:])))
    return out


def parse_deb822(text: str) -> list[Entry]:
    """Stanzas separated by blank lines; `#` lines are comments; continuation lines indented."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            suites = tuple(fields.get("suites", "").split())
            out.append(Entry(uri, suites, tuple(fields.get("components", "").split())))
    return out


def entries(apt: Path = APT) -> list[Entry]:
    out = []
    main = apt / "sources.list"
    if main.is_file():
        out += parse_one_line(main.read_text())
    parts = apt / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                out += parse_one_line(path.read_text())
            elif path.suffix == ".sources":
                out += parse_deb822(path.read_text())
    return out


def host_release(os_release: Path = OS_RELEASE) -> str | None:
    """VERSION_CODENAME of a Debian host, else None."""
    if not os_release.is_file():
        return None
    fields = dict(line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line)
    if fields.get("ID", "").strip('"') != "debian":
        return None
    return fields.get("VERSION_CODENAME", "").strip('"') or None


def choose(found: list[Entry], suite: str, host: str | None) -> str | None:
    for wanted in (suite, host):
        if wanted is None:
            continue
        for entry in found:
            if wanted in entry.suites and "main" in entry.components:
                return entry.uri.rstrip("/")
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: apt_mirror.py SUITE", file=sys.stderr)
        return 2
    uri = choose(entries(), argv[1], host_release())
    if uri is None:
        print(
            f"no Debian mirror for {argv[1]} in {APT}/sources.list*; set DEBIAN_MIRROR",
            file=sys.stderr,
        )
        return 1
    print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
