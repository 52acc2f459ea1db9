#!/usr/bin/env bash
# `make docker-test`: the image as a user runs it, checked end to end on loopback.
#   1. Docker is there and its daemon runs (installed and started here when missing:
#      dockerd --storage-driver=vfs --iptables=false --bridge=none, as CI machines need);
#   2. `make docker` builds the image from this checkout (and the local base image);
#   3. without FIELDCAST_PUBLIC_IP on 0.0.0.0 the container says in one line what to set, and
#      docker/compose.yaml is valid (docker-compose config), asks for it too, and binds
#      Grafana and Prometheus to loopback with generated secrets;
#   4. with a volume: the health check turns healthy, the generated operator token is in the
#      volume and not in `docker logs`, ffmpeg publishes into its RTMP port,
#      the project's WHEP client decodes >= 90 frames at 1280x720, an order survives
#      `docker restart`, `docker stop` ends it cleanly within 10 s, and nothing in it runs
#      as root.
# Prints one line per check; exits non-zero at the first that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# The binary to package: FIELDCAST_BIN when set (CI hands over the one its fresh root built),
# else this checkout's release build. The WHEP player that checks the image from outside is
# fieldcast-probe: FIELDCAST_PROBE when set (CI hands it over too), else built here.
bin=${FIELDCAST_BIN:-target/release/fieldcast}
probe=${FIELDCAST_PROBE:-}
if [[ -z "$probe" ]]; then
  cargo build --release --locked -p fieldcast-probe
  probe=target/release/fieldcast-probe
fi
name=fieldcast-test-$$
volume=fieldcast-test-data-$$
http=127.0.0.1:18580
rtmp=127.0.0.1:11580
udp=127.0.0.1:18589
whip=127.0.0.1:18590
srt=127.0.0.1:18591
started=$SECONDS
pass() { echo "docker-test: ok: $*"; }
fail() { echo "docker-test: FAILED: $*" >&2; docker logs "$name" 2>&1 | tail -20 >&2 || true; exit 1; }
cleanup() {
  docker rm -f "$name" "$name-nopublic" >/dev/null 2>&1 || true
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
  [[ -n "${ffmpeg_pid:-}" ]] && kill "$ffmpeg_pid" 2>/dev/null || true
}
trap cleanup EXIT

# 1. Docker.
scripts/docker-daemon.sh

command -v ffmpeg >/dev/null 2>&1 || {
  echo "docker-test: installing ffmpeg (the test's publisher)"
  scripts/apt-install.sh --no-install-recommends ffmpeg; }

# 2. The image.
scripts/docker.sh
size=$(docker image inspect fieldcast:latest --format '{{.Size}}')
pass "image fieldcast:latest built, $((size / 1000000)) MB ($((SECONDS - started)) s so far)"

# 3. 0.0.0.0 without a public IP: one line that says what to set.
docker run --name "$name-nopublic" --network host -e FIELDCAST_HTTP=127.0.0.1:18581 \
  -e FIELDCAST_RTMP=127.0.0.1:11581 fieldcast:latest >/dev/null 2>&1 || true
line=$(docker logs "$name-nopublic" 2>&1 | grep FIELDCAST_PUBLIC_IP || true)
[[ $(printf '%s\n' "$line" | grep -c .) -eq 1 ]] || fail "no single line names FIELDCAST_PUBLIC_IP: $(docker logs "$name-nopublic" 2>&1)"
pass "without a public IP it says: $line"

# The compose stack: valid, and it asks for the public IP (its images come from Docker Hub,
# which no test here can pull, so it is checked, not started).
command -v docker-compose >/dev/null 2>&1 || {
  scripts/apt-install.sh docker-compose; }
FIELDCAST_PUBLIC_IP=203.0.113.7 docker-compose -f docker/compose.yaml config -q \
  || fail "docker/compose.yaml is not valid"
( unset FIELDCAST_PUBLIC_IP; docker-compose -f docker/compose.yaml config -q 2>&1 || true ) \
  | grep -q "set FIELDCAST_PUBLIC_IP" || fail "compose does not ask for FIELDCAST_PUBLIC_IP"
pass "docker/compose.yaml is valid and asks for FIELDCAST_PUBLIC_IP"
config=$(FIELDCAST_PUBLIC_IP=203.0.113.7 docker-compose -f docker/compose.yaml config)
for service in grafana prometheus; do
  published=$(sed -n "/^  $service:/,/^  [a-z]/p" <<<"$config" | sed -n '/^    ports:/,/^    [a-z]/p' | grep '^    - ' || true)
  [[ -n "$published" ]] || fail "compose publishes no port for $service"
  ! grep -qv '^    - 127\.0\.0\.1:' <<<"$published" || fail "compose publishes $service beyond loopback: $published"
done
grep -q 'GF_SECURITY_ADMIN_PASSWORD__FILE: /secrets/grafana-admin-password' <<<"$config" \
  || fail "Grafana's admin password is not the generated one"
! grep -q 'GF_SECURITY_ADMIN_PASSWORD:' <<<"$config" || fail "Grafana's admin password is written in compose"
grep -q 'FIELDCAST_METRICS_TOKEN_FILE: /secrets/metrics-token' <<<"$config" || fail "/metrics is open in compose"
pass "compose binds Grafana and Prometheus to loopback, with a generated Grafana password and a metrics token"
# The secrets service runs the fieldcast image itself: run it, twice (the second keeps them).
project=fieldcast-test-$$
secrets() {
  FIELDCAST_PUBLIC_IP=203.0.113.7 docker-compose -f docker/compose.yaml -p "$project" run --rm \
    --entrypoint "/bin/sh -c" secrets 'cat /secrets/grafana-admin-password /secrets/metrics-token' 2>/dev/null
}
FIELDCAST_PUBLIC_IP=203.0.113.7 docker-compose -f docker/compose.yaml -p "$project" run --rm secrets >/dev/null 2>&1 \
  || fail "compose's secrets service failed"
first=$(secrets)
FIELDCAST_PUBLIC_IP=203.0.113.7 docker-compose -f docker/compose.yaml -p "$project" run --rm secrets >/dev/null 2>&1
again=$(secrets)
FIELDCAST_PUBLIC_IP=203.0.113.7 docker-compose -f docker/compose.yaml -p "$project" down -v >/dev/null 2>&1 || true
[[ ${#first} -eq 96 && "$first" =~ ^[0-9a-f]+$ ]] || fail "the generated secrets are not two 48-digit hex strings: $first"
[[ "$first" == "$again" ]] || fail "a second run of the secrets service changed the secrets"
pass "compose's secrets service makes a Grafana password and a metrics token once, and keeps them"

# 4. Run it with a volume, as a user would (host network: one UDP port for WebRTC).
run() {
  docker run -d --name "$name" --network host -v "$volume:/data" \
    --health-interval 2s --health-start-period 20s \
    -e FIELDCAST_HTTP=$http -e FIELDCAST_RTMP=$rtmp -e FIELDCAST_WEBRTC_UDP=$udp -e FIELDCAST_WEBRTC_TCP=$udp \
    -e FIELDCAST_WHIP_UDP=$whip -e FIELDCAST_SRT=$srt \
    fieldcast:latest serve >/dev/null
}
healthy() {
  for _ in $(seq 60); do
    [[ $(docker inspect "$name" --format '{{.State.Health.Status}}') == healthy ]] && return 0
    sleep 1
  done
  fail "the health check did not turn healthy in 60 s: $(docker inspect "$name" --format '{{json .State.Health}}')"
}
run
healthy
pass "health check healthy"

# The operator token was generated into the volume; the log says where, never what.
token=$(docker exec "$name" cat /data/api-token)
[[ ${#token} -ge 16 ]] || fail "no operator token in /data/api-token"
# The log read once (grep -q closing a pipe early would fail the pipeline).
log=$(docker logs "$name" 2>&1)
grep -q "operator token generated and stored in /data/api-token" <<<"$log" \
  || fail "the log does not say where the token is: $(head -5 <<<"$log")"
! grep -qF "$token" <<<"$log" || fail "docker logs holds the operator token"
pass "docker logs says where the operator token is and does not hold it"

api() { curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
session=$(api -d '{"title":"Docker test"}' "http://$http/api/v1/sessions")
id=$(json "['id']" <<<"$session"); key=$(json "['stream_key']" <<<"$session")
ffmpeg -loglevel error -nostdin -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset veryfast -g 60 \
  -pix_fmt yuv420p -c:a aac -t 60 -f flv "rtmp://$rtmp/live/$key" 2>/dev/null &
ffmpeg_pid=$!
for _ in $(seq 20); do
  [[ $(api "http://$http/api/v1/sessions/$id" | json "['state']") == publisher-connected ]] && break
  sleep 0.5
done
pass "ffmpeg publishes into the container's RTMP port"
report=$("$probe" watch "http://$http/whep/$id" --seconds 6)
frames=$(sed -n 's/.*decoded \([0-9]*\) frames at 1280x720.*/\1/p' <<<"$report")
[[ ${frames:-0} -ge 90 ]] || fail "the WHEP client decoded too little: $report"
pass "the WHEP client outside the container decoded $frames frames at 1280x720"

product=$(api -d '{"name":"Rose jam","unit_amount":5900,"currency":"CNY","unit":"jar"}' "http://$http/api/v1/products" | json "['id']")
offer=$(api -d "{\"product_id\":\"$product\",\"unit_amount\":4900,\"quantity\":5}" "http://$http/api/v1/sessions/$id/offers" | json "['id']")
order=$(curl -sf -H 'Content-Type: application/json' -H 'Idempotency-Key: docker-test-1' \
  -d "{\"offer_id\":\"$offer\",\"quantity\":2,\"buyer\":{\"name\":\"Aygul\",\"phone\":\"+86 138 0000 0001\",\"address\":\"12 Orchard Lane\"}}" \
  "http://$http/api/v1/sessions/$id/orders" | json "['id']")
kill "$ffmpeg_pid" 2>/dev/null || true; ffmpeg_pid=
docker restart "$name" >/dev/null
healthy
api "http://$http/api/v1/sessions/$id/orders" | grep -q "\"$order\"" || fail "order $order is gone after docker restart"
pass "order $order survived docker restart"

uids=$(docker top "$name" -o pid,uid,comm | tail -n +2)
[[ -n "$uids" ]] || fail "docker top shows no process"
! awk '{print $2}' <<<"$uids" | grep -qx 0 || fail "a process runs as root: $uids"
pass "no process in the container runs as root (uid/command: $(awk '{print $2 "/" $3}' <<<"$uids" | tr '\n' ' '))"

t0=$(date +%s.%N)
docker stop -t 10 "$name" >/dev/null
t1=$(date +%s.%N)
code=$(docker inspect "$name" --format '{{.State.ExitCode}}')
took=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
[[ $code -eq 0 ]] || fail "docker stop: exit code $code"
python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 10 else 1)" || fail "docker stop took ${took} s"
pass "docker stop: exit code 0 after ${took} s (SIGTERM handled)"
echo "docker-test: all passed in $((SECONDS - started)) s"
