#!/usr/bin/env bash
# `make deb-test`: the Debian package installed as the README says, in a fresh Debian 12
# container (the local debian:bookworm-slim; Docker as `make docker-test` sets it up).
# systemd cannot run as PID 1 there, so the unit is checked with `systemd-analyze verify`
# and the server is started with the unit's own ExecStart, User and Environment; then
# /healthz must answer and the first start's output (the journal, under systemd) must say
# where the operator token is, without the token.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

deb=$(scripts/deb.sh | tail -1)
echo "deb-test: built $deb ($(du -h "$deb" | cut -f1))"
scripts/docker-daemon.sh
docker/base-image.sh

docker run --rm --network host -v "$PWD/target/debian:/pkg:ro" debian:bookworm-slim /bin/bash -euo pipefail -c '
  export DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  apt-get update -qq
  # As the README says: apt installs the package and what it depends on.
  apt-get install -y -qq '"/pkg/$(basename "$deb")"' >/dev/null
  apt-get install -y -qq systemd >/dev/null   # only for systemd-analyze
  unit=/lib/systemd/system/fieldcast.service
  systemd-analyze verify "$unit"
  echo "deb-test: ok: systemd-analyze verify $unit"
  getent passwd fieldcast >/dev/null && [ "$(stat -c %U /var/lib/fieldcast)" = fieldcast ]
  echo "deb-test: ok: user fieldcast owns /var/lib/fieldcast"
  mode=$(stat -c %a:%U:%G /etc/fieldcast/fieldcast.toml)
  [ "$mode" = 640:root:fieldcast ] || { echo "deb-test: FAILED: /etc/fieldcast/fieldcast.toml is $mode, not 640:root:fieldcast" >&2; exit 1; }
  echo "deb-test: ok: /etc/fieldcast/fieldcast.toml is 0640 root:fieldcast (it may hold api_token)"
  # The README step: the address viewers reach (here loopback, on ports of the test).
  sed -i "s|^# public_ip = .*|public_ip = \"127.0.0.1\"|; s|^http = .*|http = \"127.0.0.1:18680\"|; s|^rtmp = .*|rtmp = \"127.0.0.1:11680\"|; s|^webrtc_udp = .*|webrtc_udp = \"127.0.0.1:18689\"|; s|^webrtc_tcp = .*|webrtc_tcp = \"127.0.0.1:18689\"|; s|^whip_udp = .*|whip_udp = \"127.0.0.1:18690\"|; s|^srt = .*|srt = \"127.0.0.1:18691\"|" /etc/fieldcast/fieldcast.toml
  user=$(sed -n "s/^User=//p" "$unit")
  exec_start=$(sed -n "s/^ExecStart=//p" "$unit")
  environment=$(sed -n "s/^Environment=//p" "$unit")
  # What systemd would do: StateDirectory, the user, the environment, stdout to the journal.
  install -d -o "$user" -g "$user" -m 0750 /var/lib/fieldcast
  env -i $environment JOURNAL_STREAM=8:1 PATH=/usr/bin:/bin \
    setpriv --reuid "$user" --regid "$user" --init-groups --no-new-privs $exec_start > /tmp/journal 2>&1 &
  pid=$!
  for i in $(seq 60); do
    fieldcast healthcheck --config /etc/fieldcast/fieldcast.toml >/dev/null 2>&1 && break
    sleep 0.5
  done
  fieldcast healthcheck --config /etc/fieldcast/fieldcast.toml
  echo "deb-test: ok: /healthz answers (pid $pid runs as $(ps -o user= -p $pid 2>/dev/null || stat -c %U /proc/$pid))"
  token=$(cat /var/lib/fieldcast/api-token)
  grep -q "operator token generated and stored in /var/lib/fieldcast/api-token" /tmp/journal \
    || { cat /tmp/journal; echo "deb-test: FAILED: the first start does not say where the token is" >&2; exit 1; }
  ! grep -q "$token" /tmp/journal || { echo "deb-test: FAILED: the token itself is in the journal" >&2; exit 1; }
  echo "deb-test: ok: the first start says: $(grep "operator token" /tmp/journal)"
  kill -TERM $pid; wait $pid || true
'
echo "deb-test: all passed in $((SECONDS - started)) s"
