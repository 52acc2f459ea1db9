#!/usr/bin/env bash
# Makes the local base image `debian:bookworm-slim` when Docker does not have it (no
# registry needed): a minimal Debian 12 root from debootstrap, imported as an image.
set -euo pipefail
if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
  echo "base image: installing debootstrap"
  "$(dirname "$0")/../scripts/apt-install.sh" debootstrap
}
root=$(mktemp -d /var/tmp/fieldcast-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
# mktemp makes it 0700, and it becomes the image's /: everyone must be able to enter it.
chmod 0755 "$root"
echo "base image: debootstrap --variant=minbase bookworm (about a minute)"
# The host's own Debian mirror (one-line or deb822 sources), else Debian's.
mirror=$(awk '/^deb / && /debian/ {print $2; exit} /^URIs:/ && /debian/ {print $2; exit}' \
  /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
# The slim image's apt settings: no recommends, no documentation.
printf 'APT::Install-Recommends "false";\n' > "$root/etc/apt/apt.conf.d/00fieldcast"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - debian:bookworm-slim >/dev/null
echo "base image: debian:bookworm-slim made"
