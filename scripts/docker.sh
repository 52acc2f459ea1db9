#!/usr/bin/env bash
# `make docker`: the runtime image (docker/Dockerfile) from a release binary, tagged
# fieldcast:VERSION and fieldcast:latest. Makes the local base image first when Docker has
# none (docker/base-image.sh: no registry needed).
#   scripts/docker.sh            the binary is FIELDCAST_BIN when set, else this checkout's
#                                release build (built here with cargo)
#   scripts/docker.sh --prepare  only the image's package layer (the Dockerfile's `runtime`
#                                stage): CI makes it while a fresh root compiles the binary
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk -F'"' '/^version/ {print $2; exit}' Cargo.toml)

docker/base-image.sh
context=target/docker
rm -rf "$context" && mkdir -p "$context"
cp docker/Dockerfile "$context/Dockerfile"
if [[ "${1:-}" == --prepare ]]; then
  docker build --network host -q --target runtime -t fieldcast-runtime:latest "$context" >/dev/null
  echo "fieldcast-runtime:latest (the image's packages) ready"
  exit 0
fi

bin=${FIELDCAST_BIN:-}
if [[ -z "$bin" ]]; then
  cargo build --release --locked
  bin=target/release/fieldcast
fi
# Debug info stays in target/release (it is 200 MB of the binary's 210).
objcopy --strip-debug "$bin" "$context/fieldcast"
docker build --network host -q -t "fieldcast:$version" -t fieldcast:latest "$context" >/dev/null
echo "fieldcast:$version $(docker image inspect fieldcast:latest --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
