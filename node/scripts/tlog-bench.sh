#!/usr/bin/env bash
# The transparency log's serving figures on a 3-node TLS cluster on
# loopback: inclusion proofs against the latest signed checkpoint (1 and 8
# clients, each proof verified by the client) and the time from an append to
# its inclusion in a committed checkpoint. Prints one JSON line per run.
# Usage: node/scripts/tlog-bench.sh [BIN_DIR]   (holding icsd and icsctl; default target/release)
set -euo pipefail
BIN=${1:-target/release}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/icsd" tls init --party maintenance --out "$WORK/tls" \
  --node 1=127.0.0.1 --node 2=127.0.0.1 --node 3=127.0.0.1 >/dev/null
for i in 1 2 3; do
  mkdir -p "$WORK/n$i" && cp -r "$WORK/tls/node-$i" "$WORK/n$i/tls"
  "$BIN/icsd" serve --node-id "$i" --data-dir "$WORK/n$i" --listen "127.0.0.1:$((7800 + i))" \
    --http-listen "127.0.0.1:$((7850 + i))" --peer-listen "127.0.0.1:$((7820 + i))" \
    --peer "1=127.0.0.1:7821" --peer "2=127.0.0.1:7822" --peer "3=127.0.0.1:7823" \
    >"$WORK/n$i.log" 2>&1 &
  PIDS+=($!)
done
ctl() { ICS_TLS_DIR="$WORK/tls/operator-admin" "$BIN/icsctl" --server 127.0.0.1:7801 "$@"; }
for _ in $(seq 120); do
  [ -f "$WORK/n1/root.key" ] && ctl cluster ready >/dev/null 2>&1 && break
  sleep 0.5
done
ctl key generate --out "$WORK/k.key" >/dev/null
ctl author add --signer "$WORK/n1/root.key" --key "$WORK/k.key" --label bench >/dev/null
# A log of about 10,000 events to prove from.
ctl bench --signer "$WORK/k.key" --clients 8 --requests 13 --batch 100 >/dev/null
sleep 2
for clients in 1 8; do
  echo "{\"run\":\"proofs\",\"result\":$(ctl bench-proof --clients "$clients" --requests $((4000 / clients)) --events 10000)}"
done
echo "{\"run\":\"append_to_checkpoint\",\"result\":$(ctl bench-checkpoint --signer "$WORK/k.key" --events 200)}"
