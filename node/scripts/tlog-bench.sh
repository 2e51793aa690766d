#!/usr/bin/env bash
# The transparency log's serving figures on a 3-node TLS cluster on
# loopback: inclusion proofs against the latest signed checkpoint (1 and 8
# clients, each proof verified by the client) and the time from an append to
# its inclusion in a committed checkpoint. Prints one JSON line per run.
# Usage: node/scripts/tlog-bench.sh [BIN_DIR]   (holding icsd and icsctl; default target/release)
set -euo pipefail
BIN=${1:-target/release}
. "$(dirname "$0")/cluster3.sh"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_cluster3 "$BIN" "$WORK" 7800
# A log of about 10,000 events to prove from.
ctl bench --signer "$WORK/k.key" --clients 8 --requests 13 --batch 100 >/dev/null
sleep 2
for clients in 1 8; do
  echo "{\"run\":\"proofs\",\"result\":$(ctl bench-proof --clients "$clients" --requests $((4000 / clients)) --events 10000)}"
done
echo "{\"run\":\"append_to_checkpoint\",\"result\":$(ctl bench-checkpoint --signer "$WORK/k.key" --events 200)}"
