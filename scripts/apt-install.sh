#!/usr/bin/env bash
# Installs Debian packages on this machine, waiting while another apt holds its locks: CI
# prepares Docker while its fresh-root harness may be installing debootstrap on the same
# machine. Any other apt error fails at once, with apt's own words.
#   scripts/apt-install.sh [APT-GET INSTALL OPTIONS] PACKAGE...
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for try in $(seq 120); do
  if apt-get -o DPkg::Lock::Timeout=30 update -qq > "$log" 2>&1 \
     && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq "$@" > "$log" 2>&1; then
    exit 0
  fi
  if ! grep -q -E 'Could not get lock|Unable to (acquire|lock)' "$log"; then
    cat "$log" >&2
    exit 1
  fi
  (( try % 6 == 1 )) && echo "apt: another apt holds the lock; waiting (try $try)" >&2
  sleep 5
done
echo "apt: the lock was still held after 10 minutes" >&2
exit 1
