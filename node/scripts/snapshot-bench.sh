#!/usr/bin/env bash
# Snapshot install and restart of a node holding many events, on loopback.
# Nodes 1 and 2 of a three-member cluster take EVENTS device registrations
# (snapshots every 100 Raft entries, so the log behind them is purged); node 3
# then starts empty and can only catch up by installing a snapshot. Then node
# 3 restarts from its own disk. Prints, for the install, the time from start
# to "snapshot installed" and to holding every event with the leader's state
# hash; for the restart, the time until the state machine is open and until
# /readyz; and for each node 3's peak resident memory (VmHWM).
# Usage: node/scripts/snapshot-bench.sh [EVENTS] [BIN_DIR]
#   BIN_DIR holds icsd and icsctl (default: a fresh release build).
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${1:-100000}
BIN=${2:-}
if [ -z "$BIN" ]; then
  cargo build -q --release --bin icsd --bin icsctl
  BIN=target/release
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

BASE=17600
cat >"$WORK/icsd.toml" <<'EOF'
[raft]
snapshot_after_entries = 100
entries_kept_after_snapshot = 10
EOF
PEERS=()
for i in 1 2 3; do PEERS+=(--peer "$i=127.0.0.1:$((BASE + 20 + i))"); done
"$BIN/icsd" tls init --party maintenance --out "$WORK/tls" \
  --node 1=127.0.0.1 --node 2=127.0.0.1 --node 3=127.0.0.1 >/dev/null
export ICS_TLS_DIR="$WORK/tls/operator-admin"   # icsctl's CA and operator certificate

start() {
  "$BIN/icsd" serve -c "$WORK/icsd.toml" --node-id "$1" --data-dir "$WORK/n$1" \
    --listen "127.0.0.1:$((BASE + $1))" --http-listen "127.0.0.1:$((BASE + 50 + $1))" \
    --peer-listen "127.0.0.1:$((BASE + 20 + $1))" --tls-dir "$WORK/tls/node-$1" \
    "${PEERS[@]}" 2>>"$WORK/n$1.log" &
  PIDS+=($!)
  LAST_PID=$!
}

status() { "$BIN/icsctl" -s "127.0.0.1:$((BASE + $1))" --json cluster status 2>/dev/null; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf --cacert "$ICS_TLS_DIR/ca.crt" "https://127.0.0.1:$((BASE + 50 + $1))/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node $1 not ready" >&2; exit 1
}

# Waits (up to 120 s) until node 3 holds `count` events with state hash `hash`.
wait_caught_up() {
  local count=$1 hash=$2
  for _ in $(seq 1 2400); do
    local s
    if s=$(status 3) && [ "$(field event_count <<<"$s")" = "$count" ] \
      && [ "$(field state_hash <<<"$s")" = "$hash" ]; then
      return 0
    fi
    sleep 0.05
  done
  echo "node 3 did not catch up" >&2; return 1
}

hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

start 1
start 2
wait_ready 1
wait_ready 2
AUTHOR="$WORK/author.key"
"$BIN/icsctl" -s "127.0.0.1:$((BASE + 1))" key generate --out "$AUTHOR" >/dev/null
"$BIN/icsctl" -s "127.0.0.1:$((BASE + 1))" author add --signer "$WORK/n1/root.key" --key "$AUTHOR" >/dev/null
"$BIN/icsctl" -s "127.0.0.1:$((BASE + 1))" bench --signer "$AUTHOR" --clients 8 \
  --requests "$((EVENTS / 800))" --batch 100 >/dev/null
S=$(status 1)
COUNT=$(field event_count <<<"$S")
HASH=$(field state_hash <<<"$S")
SNAP=$(field raft_snapshot_index <<<"$S" 2>/dev/null || echo "?")
echo "# $(nproc) cores, $(uname -r), $COUNT events on nodes 1-2, $(du -sh "$WORK/n1" | cut -f1) on disk, snapshot at raft index $SNAP"

# Waits until node 3's log holds `n` lines with `text`.
wait_log() {
  local text=$1 n=$2
  for _ in $(seq 1 6000); do
    [ "$(grep -c "$text" "$WORK/n3.log" 2>/dev/null || true)" -ge "$n" ] && return 0
    sleep 0.05
  done
  echo "node 3 never logged $text" >&2; tail -5 "$WORK/n3.log" >&2; exit 1
}
now() { date +%s.%N; }
since() { python3 -c "print(round($(now) - $1, 2))"; }
n3() { status 3 | field "$1"; }

# Install: node 3 starts empty; the leader's log behind its snapshot is gone.
T0=$(now)
start 3
wait_log "snapshot installed" 1
INSTALL_S=$(since "$T0")
INSTALL_EVENTS=$(n3 event_count)
INSTALL_RSS=$(hwm_mib "$LAST_PID")
CAUGHT_UP=null
if (wait_caught_up "$COUNT" "$HASH") 2>/dev/null; then CAUGHT_UP=$(since "$T0"); fi
printf '{"run":"snapshot-install","snapshot_events":%s,"install_seconds":%s,"peak_rss_mib":%s,"caught_up_seconds":%s}\n' \
  "$INSTALL_EVENTS" "$INSTALL_S" "$INSTALL_RSS" "$CAUGHT_UP"

# Restart: node 3 reopens its data dir (SIGTERM, then start).
EVENTS3=$(n3 event_count)
kill "$LAST_PID"
wait "$LAST_PID" 2>/dev/null || true
T0=$(now)
start 3
wait_log "state machine opened" 2
OPEN_S=$(since "$T0")
READY_S=null
if (wait_ready 3) 2>/dev/null; then READY_S=$(since "$T0"); fi
printf '{"run":"restart","events":%s,"state_open_seconds":%s,"ready_seconds":%s,"peak_rss_mib":%s}\n' \
  "$EVENTS3" "$OPEN_S" "$READY_S" "$(hwm_mib "$LAST_PID")"
grep "state machine opened" "$WORK/n3.log" | tail -1 | cut -c1-240
