# Sourced by the benchmark scripts: a cluster of release icsd processes on
# loopback with an author key allowed to register devices.
#
# start_loopback_cluster SIZE BASE: nodes 1..SIZE in "$WORK/c$SIZE-n$i", gRPC
# on BASE+i, peers on BASE+20+i, HTTPS on BASE+50+i; their pids appended to
# PIDS. Needs BIN and WORK. Sets SERVER (node 1's gRPC address), AUTHOR (the
# author key file) and exports ICS_TLS_DIR (the operator's TLS material).
start_loopback_cluster() {
  local size=$1 base=$2 peers=() nodes=()
  for i in $(seq 1 "$size"); do
    peers+=(--peer "$i=127.0.0.1:$((base + 20 + i))")
    nodes+=(--node "$i=127.0.0.1")
  done
  [ "$size" -gt 1 ] || peers=()
  # A cluster's TLS material is made up front; a single node makes its own.
  if [ "$size" -gt 1 ]; then
    "$BIN/icsd" tls init --party maintenance --out "$WORK/tls-$size" "${nodes[@]}" >/dev/null
    for i in $(seq 1 "$size"); do mkdir -p "$WORK/c$size-n$i" && cp -r "$WORK/tls-$size/node-$i" "$WORK/c$size-n$i/tls"; done
  fi
  for i in $(seq 1 "$size"); do
    "$BIN/icsd" serve --node-id "$i" --data-dir "$WORK/c$size-n$i" \
      --listen "127.0.0.1:$((base + i))" --http-listen "127.0.0.1:$((base + 50 + i))" \
      --peer-listen "127.0.0.1:$((base + 20 + i))" "${peers[@]}" >/dev/null 2>"$WORK/c$size-n$i.log" &
    PIDS+=($!)
  done
  if [ "$size" -gt 1 ]; then export ICS_TLS_DIR="$WORK/tls-$size/operator-admin"; else
    for _ in $(seq 1 100); do [ -f "$WORK/c1-n1/tls/operator.key" ] && break; sleep 0.1; done
    export ICS_TLS_DIR="$WORK/c1-n1/tls"
  fi
  local ready=""
  for _ in $(seq 1 150); do
    curl -sf --cacert "$ICS_TLS_DIR/ca.crt" "https://127.0.0.1:$((base + 51))/readyz" >/dev/null 2>&1 && ready=1 && break
    sleep 0.1
  done
  [ -n "$ready" ] || { echo "node 1 at 127.0.0.1:$((base + 51)) not ready" >&2; return 1; }
  # The root key is written where the genesis is made.
  local root=""
  for _ in $(seq 1 100); do
    root=$(ls "$WORK"/c"$size"-n*/root.key 2>/dev/null | head -n1) && [ -n "$root" ] && break
    sleep 0.1
  done
  SERVER="127.0.0.1:$((base + 1))"
  AUTHOR="$WORK/author-$size.key"
  "$BIN/icsctl" -s "$SERVER" key generate --out "$AUTHOR" >/dev/null
  "$BIN/icsctl" -s "$SERVER" author add --signer "$root" --key "$AUTHOR" --kinds device-registered >/dev/null
}
