#!/usr/bin/env bash
# icsd against etcd on the same machine, in one interleaved run: a 3-node
# icsd cluster (signed device registrations over gRPC with mutual TLS, an
# fdatasync before every acknowledgement) and a 3-member etcd (Debian's
# etcd-server, its HTTP/JSON gateway driven by wrk, fsync on every commit),
# both on loopback. At each client count (1 4 16 64 256) etcd runs, then
# icsd, then both again (ROUNDS times); then a single icsd node and batched
# appends. Writes one JSON line per run to OUT/side-by-side.jsonl, then the
# table (OUT/side-by-side.md) and the plot (OUT/side-by-side.svg).
# Usage: node/scripts/side-by-side.sh [SECONDS_PER_RUN] [ROUNDS] [BIN_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
ROUNDS=${2:-2}
BIN=${3:-target/release}
OUT=${4:-node/benches/results}
CLIENTS=${CLIENTS:-1 4 16 64 256}
for tool in etcd:etcd-server wrk:wrk curl:curl python3:python3; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool#*:}" >/dev/null; }
done
[ -x "$BIN/icsd" ] || cargo build -q --release --locked --bin icsd --bin icsctl
mkdir -p "$OUT"
RESULTS="$OUT/side-by-side.jsonl"
: >"$RESULTS"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

conditions() {
  printf '{"system":"machine","cores":%s,"kernel":"%s","memory_gib":%s,"etcd":"%s","icsd":"%s","seconds_per_run":%s,"rounds":%s,"date":"%s"}\n' \
    "$(nproc)" "$(uname -r)" "$(awk '/MemTotal/ {printf "%d", $2/1048576}' /proc/meminfo)" \
    "$(etcd --version | awk '/etcd Version/ {print $3}')" "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
    "$SECS" "$ROUNDS" "$(date -u +%FT%TZ)"
}

# ---- etcd: three members, wrk on the leader's HTTP/JSON gateway ----
start_etcd() {
  local cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/e$i" \
      --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
      --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
      --initial-cluster "$cluster" --initial-cluster-state new --log-level error >"$WORK/e$i.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 1 100); do
    for i in 1 2 3; do
      if curl -sf -X POST "http://127.0.0.1:2379$i/v3/maintenance/status" -d '{}' 2>/dev/null |
        python3 -c 'import sys,json;d=json.load(sys.stdin);sys.exit(0 if d.get("leader")==d["header"]["member_id"] else 1)'; then
        ETCD="http://127.0.0.1:2379$i"; return 0
      fi
    done
    sleep 0.2
  done
  echo "etcd did not elect a leader" >&2; return 1
}
cat >"$WORK/put.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  local k = string.format("%08d%08d", math.random(0, 99999999), counter)  -- base64 for the gateway
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"]="application/json"},
    '{"key":"' .. k .. '","value":"' .. k .. k .. k .. k .. '"}')
end
LUA

# wrk's summary as a JSON line: $1 clients.
etcd_run() {
  local c=$1 threads=$(( $1 > 1 ? 2 : 1 ))
  wrk -t "$threads" -c "$c" -d "${SECS}s" --latency -s "$WORK/put.lua" "$ETCD" >"$WORK/wrk.out"
  python3 - "$c" "$WORK/wrk.out" >>"$RESULTS" <<'PY'
import json, re, sys
clients, text = int(sys.argv[1]), open(sys.argv[2]).read()
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
def pct(p):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, text, re.M)
    return float(m.group(1)) * unit[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors or "Socket errors" in text:
    sys.exit("etcd run had errors:\n" + text)
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(json.dumps({"system": "etcd", "nodes": 3, "clients": clients, "batch": 1,
                  "writes_per_second": rate, "latency_ms_p50": pct(50), "latency_ms_p99": pct(99)}))
PY
}

# ---- icsd: a cluster of release nodes, `icsctl bench` ----
. node/scripts/loopback-cluster.sh

# $1 nodes, $2 clients, $3 events per request. About SECS seconds of
# appends at the rate the previous run of this load reached (pre-signed).
declare -A RATE
icsd_run() {
  local nodes=$1 c=$2 b=$3 key="$1-$2-$3"
  local guess=${RATE[$key]:-$(( c * b * 300 < 3000 ? c * b * 300 : 3000 ))}
  local per=$(( guess * SECS / c / b ))
  [ "$per" -ge 20 ] || per=20
  "$BIN/icsctl" -s "$SERVER" bench --signer "$AUTHOR" --clients "$c" --requests "$per" --batch "$b" >"$WORK/ics.out"
  python3 - "$nodes" "$WORK/ics.out" >>"$RESULTS" <<'PY'
import json, sys
r = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print(json.dumps({"system": "icsd", "nodes": int(sys.argv[1]), "clients": r["clients"], "batch": r["batch"],
                  "writes_per_second": r["events_per_second"], "latency_ms_p50": r["latency_ms_p50"],
                  "latency_ms_p99": r["latency_ms_p99"]}))
PY
  RATE[$key]=$(tail -n1 "$RESULTS" | python3 -c 'import json,sys;print(int(json.load(sys.stdin)["writes_per_second"]))')
  tail -n1 "$RESULTS" >&2
}

conditions >>"$RESULTS"
start_etcd
start_loopback_cluster 3 37500
# A warm-up of each, not recorded.
wrk -t 1 -c 4 -d 2s -s "$WORK/put.lua" "$ETCD" >/dev/null
icsd_run 3 4 1 2>/dev/null
sed -i '$d' "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  for c in $CLIENTS; do
    etcd_run "$c"; tail -n1 "$RESULTS" >&2
    icsd_run 3 "$c" 1
  done
done
icsd_run 3 8 100
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()
start_loopback_cluster 1 37600
for c in 1 64; do icsd_run 1 "$c" 1; done
icsd_run 1 8 100
python3 node/scripts/side-by-side-plot.py "$RESULTS" "$OUT/side-by-side.md" "$OUT/side-by-side.svg"
cat "$OUT/side-by-side.md"
