#!/usr/bin/env bash
# Installs the Debian 12 packages Fieldcast needs, only those missing.
#   scripts/deps.sh run    GStreamer runtime plugins (to run the server)
#   scripts/deps.sh build  + compiler and GStreamer headers (to build it)
#   scripts/deps.sh test   + ffmpeg, Chromium, Node.js, Prometheus, nginx with nginx-rtmp, strace,
#                          iproute2, nftables, coturn, tesseract (publishers, browser, metrics
#                          scraper, HLS cache, a restream destination, a stalling disk, shaped and
#                          filtered links, a TURN relay, and OCR of the card on recorded frames),
#                          and from PyPI: schemathesis in target/schemathesis (the contract test),
#                          aiortc in target/aiortc (a WHIP publisher that is not a browser),
#                          moto's S3 server in target/moto (an object store for recordings)
#   scripts/deps.sh bench  + ffmpeg, nginx-rtmp and Janus (the peers `make bench` compares with),
#                          Chromium and Node.js (the HLS latency reader)
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
set -euo pipefail

run_pkgs=(gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
          gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x gstreamer1.0-tools fonts-dejavu-core
          fonts-noto-core fonts-noto-cjk ca-certificates)
build_pkgs=(build-essential pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)
test_pkgs=(ffmpeg chromium prometheus nginx-light libnginx-mod-rtmp strace python3-venv iproute2 nftables coturn
           tesseract-ocr)
bench_pkgs=(ffmpeg nginx-light libnginx-mod-rtmp janus chromium python3-venv iproute2 nftables)

want=("${run_pkgs[@]}")
case "${1:-run}" in
  run) ;;
  build) want+=("${build_pkgs[@]}") ;;
  test) want+=("${build_pkgs[@]}" "${test_pkgs[@]}")
        command -v node >/dev/null 2>&1 || want+=(nodejs)
        command -v npm >/dev/null 2>&1 || want+=(npm) ;;
  bench) want+=("${build_pkgs[@]}" "${bench_pkgs[@]}")
         command -v node >/dev/null 2>&1 || want+=(nodejs)
         command -v npm >/dev/null 2>&1 || want+=(npm) ;;
  *) echo "usage: $0 run|build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "Fieldcast needs these Debian packages. Run, as root:" >&2
    echo "  $line" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  "$(dirname "$0")/apt-install.sh" --no-install-recommends "${missing[@]}"
  # The benchmarks and tests start nginx, Janus and Prometheus themselves, on loopback, and
  # stop them: the system services the packages enable on install are not wanted running.
  for service in nginx janus prometheus; do
    if [[ " ${missing[*]} " == *" ${service/nginx/nginx-light} "* ]] && command -v systemctl >/dev/null 2>&1 \
       && [[ -d /run/systemd/system ]]; then
      systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
fi

if [[ "${1:-run}" != run ]] && ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is missing: install Rust 1.95 or newer with rustup (https://rustup.rs), then run make again." >&2
  exit 1
fi

# The API contract test's tool, pinned, in a virtual environment of its own (Debian's Python
# takes no pip installs into the system).
SCHEMATHESIS_VERSION=4.32.5
AIORTC_VERSION=1.16.0
if [[ "${1:-run}" == test ]]; then
  venv="$(dirname "$0")/../target/schemathesis"
  if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into target/schemathesis"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
fi
# moto's server: an S3-compatible object store on loopback, where recordings move to in
# tests/after_show.rs (its S3 part only, and the Flask it serves with).
MOTO_VERSION=5.2.5
if [[ "${1:-run}" == test ]]; then
  venv="$(dirname "$0")/../target/moto"
  if ! "$venv/bin/python" -c "import moto, flask_cors, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "installing moto $MOTO_VERSION (S3) into target/moto"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[s3]==$MOTO_VERSION" flask==3.1.3 flask-cors==6.0.5
  fi
fi
# aiortc: the WHIP publisher of the tests and of bench/ingest.rs.
if [[ "${1:-run}" == test || "${1:-run}" == bench ]]; then
  venv="$(dirname "$0")/../target/aiortc"
  if ! "$venv/bin/python" -c "import aiortc, sys; sys.exit(aiortc.__version__ != '$AIORTC_VERSION')" 2>/dev/null; then
    echo "installing aiortc $AIORTC_VERSION into target/aiortc"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aiortc==$AIORTC_VERSION"
  fi
fi
