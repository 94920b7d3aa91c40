#!/usr/bin/env bash
# Make an equivalent of an official `python:X.Y-slim-<release>` image from Debian packages and
# commit it under the base's exact name, so that the Containerfile builds unchanged on a machine
# that cannot pull from a container registry. Does nothing when the base is already in storage
# (pulled, or made by an earlier run): the base is cached between runs.
#
#   image/debian-base.sh python:3.11-slim-bookworm [buildah global options, e.g. --storage-driver vfs]
#
# What the equivalent has: `debootstrap --variant=minbase <release>` (what Debian's own
# debian:<release>-slim starts from), plus Debian's python3 of that release with venv/ensurepip,
# ca-certificates, netbase and tzdata (what the official slim image adds), PATH and LANG as it
# sets them, and CMD ["python3"].
#
# Which Python: the official image builds CPython X.Y.<latest> from source into /usr/local;
# Debian has python3 = the release's one minor (bookworm: 3.11.2, the same minor as
# python:3.11-*-bookworm). The same minor means the same ABI (cp311 wheels) and standard
# library, which is what the build and the controller depend on; the patch level and the path
# (/usr/bin rather than /usr/local/bin) differ, so the Containerfile calls `python3` through
# PATH. A Debian release ships one Python minor, so when it is not the tag's, the release's
# python3 is the closest there is: it is used, with a warning.
#
# The mirror: $DEBIAN_MIRROR, or the one this machine's apt uses (image/apt_mirror.py).
set -euo pipefail

base=${1:?usage: debian-base.sh python:X.Y-slim-RELEASE [buildah options]}
shift
buildah=(buildah "$@")
here=$(cd "$(dirname "$0")" && pwd)

if [[ ! $base =~ ^python:([0-9]+)\.([0-9]+)(\.[0-9]+)?-slim-([a-z]+)$ ]]; then
    echo "debian-base.sh: cannot derive a Debian equivalent of '$base'" >&2
    echo "  (expected python:X.Y[.Z]-slim-RELEASE)" >&2
    exit 2
fi
minor="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
release=${BASH_REMATCH[4]}
name="docker.io/library/$base"

if "${buildah[@]}" inspect --type image "$name" >/dev/null 2>&1; then
    echo "base $name: in local storage"
    exit 0
fi

mirror=${DEBIAN_MIRROR:-$(python3 "$here/apt_mirror.py" "$release")}
packages="python3 python3-venv"
echo "base $name: debootstrap $release from $mirror with $packages"

ctr=$("${buildah[@]}" from scratch)
trap '"${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$("${buildah[@]}" mount "$ctr")
debootstrap --variant=minbase --include="${packages// /,},ca-certificates,netbase,tzdata" \
    "$release" "$root" "$mirror" >/dev/null
version=$(chroot "$root" /usr/bin/python3 -c 'import platform; print(platform.python_version())')
if [[ $version != "$minor".* ]]; then
    echo "debian-base.sh: warning: $release has Python $version, not $minor; using it" >&2
fi
# As the official image: no apt lists, no downloaded packages, no logs, no docs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/tmp/* "$root"/root/.cache
"${buildah[@]}" umount "$ctr" >/dev/null
"${buildah[@]}" config \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --env PYTHON_VERSION="$version" \
    --cmd '["python3"]' \
    --label "org.opencontainers.image.description=Debian $release minbase with Debian's Python $version, standing in for $base" \
    "$ctr"
"${buildah[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
trap - EXIT
echo "base $name: committed (Python $version)"
