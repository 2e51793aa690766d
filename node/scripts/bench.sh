#!/usr/bin/env bash
# Append benchmark on loopback: a 1-node and a 3-node cluster of release icsd
# processes, each measured with one client (latency) and eight clients with
# batches (throughput). Prints one JSON line per run.
# Usage: node/scripts/bench.sh [requests-per-client]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release --bin icsd --bin icsctl
BIN=target/release
REQ=${1:-1000}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

. node/scripts/loopback-cluster.sh

run_cluster() {
  local size=$1
  start_loopback_cluster "$size" "$2"
  local server=$SERVER author=$AUTHOR
  echo "# $size node(s), $(nproc) cores, $(uname -r)"
  "$BIN/icsctl" -s "$server" bench --signer "$author" --clients 1 --requests "$REQ" --batch 1
  "$BIN/icsctl" -s "$server" bench --signer "$author" --clients 8 --requests "$((REQ / 8))" --batch 1
  "$BIN/icsctl" -s "$server" bench --signer "$author" --clients 8 --requests "$((REQ / 50))" --batch 100
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

run_cluster 1 17400
run_cluster 3 17500
