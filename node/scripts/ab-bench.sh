#!/usr/bin/env bash
# Before/after on the write path: two builds of icsd and icsctl, each run as a
# fresh 3-node TLS cluster on loopback, interleaved A, B, A, B, ... so both
# see the same machine. Each round measures 1 client (1000 signed
# registrations, one per request) and 64 clients (60 each). Prints one JSON
# line per measurement, labelled with the build.
# Usage: node/scripts/ab-bench.sh BIN_A BIN_B [ROUNDS]
#   (each BIN a directory holding icsd and icsctl release binaries)
set -euo pipefail
A=${1:?usage: ab-bench.sh BIN_A BIN_B [ROUNDS]}
B=${2:?usage: ab-bench.sh BIN_A BIN_B [ROUNDS]}
ROUNDS=${3:-3}
. "$(dirname "$0")/cluster3.sh"
WORK=$(mktemp -d)
PIDS=()
stop() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop; rm -rf "$WORK"' EXIT

# $1: the bin directory, $2: its label.
measure() {
  local bin=$1 label=$2 dir
  dir=$(mktemp -d "$WORK/run-XXXX")
  start_cluster3 "$bin" "$dir" 7600
  # Upkeep (certificate records, log key binding) lands before measuring.
  sleep 2
  echo "{\"build\":\"$label\",\"clients\":1,\"result\":$(ctl bench --signer "$dir/k.key" --clients 1 --requests 1000 --batch 1)}"
  echo "{\"build\":\"$label\",\"clients\":64,\"result\":$(ctl bench --signer "$dir/k.key" --clients 64 --requests 60 --batch 1)}"
  stop
}

echo "# $(nproc) cores, $(uname -r), A=$A B=$B"
for _ in $(seq "$ROUNDS"); do
  measure "$A" A
  measure "$B" B
done
