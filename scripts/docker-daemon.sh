#!/usr/bin/env bash
# Makes sure a Docker client and daemon are there: installs docker.io when either is missing,
# and starts dockerd the way CI machines need it (vfs storage, no bridge, no iptables; the
# tests use --network host). Used by `make docker-test`, `make deb-test` and .ci/run.
set -euo pipefail

install_docker() {
  echo "docker: installing docker.io"
  "$(dirname "$0")/apt-install.sh" docker.io
}
command -v docker >/dev/null 2>&1 || install_docker
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || install_docker
  echo "docker: starting dockerd (vfs storage, no bridge, no iptables)"
  nohup dockerd --storage-driver=vfs --iptables=false --bridge=none >/var/log/fieldcast-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/fieldcast-dockerd.log >&2; exit 1; }
fi
