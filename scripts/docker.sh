#!/usr/bin/env bash
# `make docker`: the release binary from this checkout (cargo), then the runtime image from
# it (docker/Dockerfile), tagged fieldcast:VERSION and fieldcast:latest. Makes the local
# base image first when Docker has none (docker/base-image.sh: no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk -F'"' '/^version/ {print $2; exit}' Cargo.toml)

cargo build --release --locked
docker/base-image.sh
context=target/docker
rm -rf "$context" && mkdir -p "$context"
# Debug info stays in target/release (it is 200 MB of the binary's 210).
objcopy --strip-debug target/release/fieldcast "$context/fieldcast"
cp docker/Dockerfile "$context/Dockerfile"
docker build --network host -q -t "fieldcast:$version" -t fieldcast:latest "$context" >/dev/null
echo "fieldcast:$version $(docker image inspect fieldcast:latest --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
