#!/usr/bin/env bash
# `make bench`: runs the benchmarks and prints their tables. `--quick` for a short run
# (under 5 minutes on a 2-core machine). Never part of `make test`. Numbers and the commands
# that produced them go in BENCHMARKS.md.
#
# The peers (nginx-rtmp, ffmpeg, the Janus streaming plugin) come from Debian's packages
# (`scripts/deps.sh bench`); each benchmark starts them on loopback and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
for arg in "$@"; do [[ "$arg" == --quick ]] && quick=(--quick); done
scripts/deps.sh bench
# The HLS benchmark reads latency in Chromium through the browser tests' playwright-core.
(cd tests/browser && npm ci --no-audit --no-fund --silent)
cargo build --release --locked --benches
cargo build --release --locked -p fieldcast-probe
started=$SECONDS
run() {
  echo "== $1 (bench/$2.rs)"
  cargo bench --locked --bench "$2" -- "${quick[@]}"
  echo
}
run "orders" orders
run "the shop at the audience's scale: surge, live-state fan-out through nginx, like storm" audience
run "overlay cost" overlay
run "fan-out, against Janus" fanout
run "glass-to-glass and server-added latency, against nginx-rtmp → ffmpeg → Janus" latency
run "transcode cost per studio, against ffmpeg" transcode
run "ingest cost per input (RTMP, WHIP, SRT, HEVC, AV1) and WHIP-in latency" ingest
run "reach: the light rendition's cost, moving between renditions" reach
run "HLS and LL-HLS: keyframe cost, latency against nginx-rtmp's HLS, 2,000 clients direct and through nginx" hls
run "after the show: recording and two restreams beside nothing" after_show
echo "benchmarks took $((SECONDS - started)) s"
