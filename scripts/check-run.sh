#!/usr/bin/env bash
# Checks `make run` as a newcomer uses it: starts it, waits for "fieldcast ready", fetches
# the demo's watch page (must answer 200 with the player), then stops the server.
#   scripts/check-run.sh [SECONDS]   how long to wait for "ready" (default 1800: a cold build)
# CI runs it in a brand-new Debian 12 root (.ci/run), where `make run` must install everything.
set -euo pipefail
cd "$(dirname "$0")/.."

wait_s=${1:-1800}
data=$(mktemp -d)
log=$(mktemp)
# A port range of its own, so that the check can run beside a server on the defaults.
export FIELDCAST_HTTP=127.0.0.1:18080 FIELDCAST_RTMP=127.0.0.1:11935 FIELDCAST_SRT=127.0.0.1:18890 FIELDCAST_WHIP_UDP=127.0.0.1:18190 FIELDCAST_WEBRTC_UDP=127.0.0.1:18189 FIELDCAST_WEBRTC_TCP=127.0.0.1:18189

# Its own process group, so that the stop reaches make and the server it started.
setsid make run DATA="$data" > "$log" 2>&1 < /dev/null &
group=$!
stop() {
  kill -TERM -- "-$group" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- "-$group" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$group" 2>/dev/null || true
  rm -rf "$data"
}
trap stop EXIT

start=$SECONDS
until grep -q '^fieldcast ready ' "$log"; do
  if ! kill -0 "$group" 2>/dev/null; then
    echo "check-run: make run exited before it was ready; its output:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  if ((SECONDS - start > wait_s)); then
    echo "check-run: no \"fieldcast ready\" within ${wait_s}s; the last of its output:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
  sleep 2
  # A cold build takes minutes: say so now and then, with the last line make printed.
  if (( (SECONDS - start) % 60 < 2 )); then
    echo "check-run: waiting for \"fieldcast ready\" ($((SECONDS - start))s): $(tail -n 1 "$log" | cut -c1-100)"
  fi
done
echo "check-run: make run was ready after $((SECONDS - start))s"
grep -E '^(operator token|demo session|  watch:|  OBS server:|fieldcast ready)' "$log" | sed 's/^/  /'

url=$(sed -n 's/^  watch: *//p' "$log" | head -n 1)
[[ -n "$url" ]] || { echo "check-run: make run printed no watch URL" >&2; exit 1; }
page=$(mktemp)
code=$(curl -sS -o "$page" -w '%{http_code}' "$url")
if [[ "$code" != 200 ]] || ! grep -q '<video' "$page"; then
  echo "check-run: GET $url answered $code; body:" >&2
  head -c 2000 "$page" >&2
  exit 1
fi
echo "check-run: GET $url → 200, $(wc -c < "$page") bytes, with the player"
# The demo shows a show: its live state has a pinned product and a flash sale on.
events="${url/\/watch\//\/api\/v1\/sessions\/}/events"
for _ in $(seq 1 30); do
  state=$(curl -sS --max-time 2 "$events" 2>/dev/null | sed -n 's/^data: //p' | head -n 1 || true)
  if grep -q '"pinned":{' <<<"$state" && grep -q '"state":"live"' <<<"$state"; then break; fi
  sleep 1
done
if ! grep -q '"pinned":{' <<<"$state" || ! grep -q '"state":"live"' <<<"$state"; then
  echo "check-run: the demo has no pinned product with a live offer: $state" >&2
  exit 1
fi
echo "check-run: the demo's live state has a pinned product and a live flash sale"
health=$(curl -sS "http://${FIELDCAST_HTTP}/healthz")
echo "check-run: /healthz → $health"
echo "check-run: 2 passed, 0 failed"
