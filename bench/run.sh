#!/usr/bin/env bash
# `make bench`: runs the benchmarks and prints their tables. `--quick` for a short run.
# Never part of `make test`. Numbers and the commands that produced them go in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
for arg in "$@"; do [[ "$arg" == --quick ]] && quick=(--quick); done
echo "== orders (bench/orders.rs)"
cargo bench --locked --bench orders -- "${quick[@]}"
echo
echo "== overlay cost (bench/overlay.rs)"
cargo bench --locked --bench overlay -- "${quick[@]}"
echo
echo "== fan-out (bench/fanout.rs)"
cargo bench --locked --bench fanout -- "${quick[@]}"
