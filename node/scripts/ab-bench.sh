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
WORK=$(mktemp -d)
PIDS=()
stop() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop; rm -rf "$WORK"' EXIT

# $1: the bin directory, $2: its label.
measure() {
  local bin=$1 label=$2 dir
  dir=$(mktemp -d "$WORK/run-XXXX")
  "$bin/icsd" tls init --party maintenance --out "$dir/tls" \
    --node 1=127.0.0.1 --node 2=127.0.0.1 --node 3=127.0.0.1 >/dev/null
  for i in 1 2 3; do
    mkdir -p "$dir/n$i" && cp -r "$dir/tls/node-$i" "$dir/n$i/tls"
    "$bin/icsd" serve --node-id "$i" --data-dir "$dir/n$i" --listen "127.0.0.1:$((7600 + i))" \
      --http-listen "127.0.0.1:$((7650 + i))" --peer-listen "127.0.0.1:$((7620 + i))" \
      --peer "1=127.0.0.1:7621" --peer "2=127.0.0.1:7622" --peer "3=127.0.0.1:7623" \
      >"$dir/n$i.log" 2>&1 &
    PIDS+=($!)
  done
  ctl() { ICS_TLS_DIR="$dir/tls/operator-admin" "$bin/icsctl" --server 127.0.0.1:7601 "$@"; }
  for _ in $(seq 120); do
    [ -f "$dir/n1/root.key" ] && ctl cluster ready >/dev/null 2>&1 && break
    sleep 0.5
  done
  ctl key generate --out "$dir/k.key" >/dev/null
  ctl author add --signer "$dir/n1/root.key" --key "$dir/k.key" --label bench >/dev/null
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
