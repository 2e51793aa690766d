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

# $1: the HTTPS address, $2: the party CA.
wait_ready() {
  for _ in $(seq 1 100); do
    curl -sf --cacert "$2" "https://$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node at $1 not ready" >&2; return 1
}

run_cluster() {
  local size=$1 base=$2 peers=() nodes=()
  for i in $(seq 1 "$size"); do
    peers+=(--peer "$i=127.0.0.1:$((base + 20 + i))")
    nodes+=(--node "$i=127.0.0.1")
  done
  [ "$size" -gt 1 ] || peers=()
  # The cluster's TLS material, one directory per node (a single node makes its own).
  if [ "$size" -gt 1 ]; then
    "$BIN/icsd" tls init --party maintenance --out "$WORK/tls-$size" "${nodes[@]}" >/dev/null
    for i in $(seq 1 "$size"); do mkdir -p "$WORK/c$size-n$i" && cp -r "$WORK/tls-$size/node-$i" "$WORK/c$size-n$i/tls"; done
  fi
  for i in $(seq 1 "$size"); do
    "$BIN/icsd" serve --node-id "$i" --data-dir "$WORK/c$size-n$i" \
      --listen "127.0.0.1:$((base + i))" --http-listen "127.0.0.1:$((base + 50 + i))" \
      --peer-listen "127.0.0.1:$((base + 20 + i))" \
      "${peers[@]}" 2>"$WORK/c$size-n$i.log" &
    PIDS+=($!)
  done
  # icsctl's TLS: the party CA and the operator certificate.
  if [ "$size" -gt 1 ]; then export ICS_TLS_DIR="$WORK/tls-$size/operator-admin"; else
    for _ in $(seq 1 100); do [ -f "$WORK/c1-n1/tls/operator.key" ] && break; sleep 0.1; done
    export ICS_TLS_DIR="$WORK/c1-n1/tls"
  fi
  wait_ready "127.0.0.1:$((base + 51))" "$ICS_TLS_DIR/ca.crt"
  local server="127.0.0.1:$((base + 1))" author="$WORK/author-$size.key"
  "$BIN/icsctl" -s "$server" key generate --out "$author" >/dev/null
  "$BIN/icsctl" -s "$server" author add --signer "$WORK/c$size-n1/root.key" --key "$author" >/dev/null
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
