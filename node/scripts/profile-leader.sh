#!/usr/bin/env bash
# Where a write's time goes on the leader of a 3-node loopback cluster of
# release icsd processes, at each client count:
#   1. time per stage of the write path, from the leader's metrics
#      (ics_write_stage_seconds: pre-check, Raft round, log sync, apply;
#      ics_append_seconds: receipt to reply) during a plain run;
#   2. a CPU profile of the leader (perf record, flat, by symbol and by
#      component) during a second run;
#   3. system calls per Raft entry and per event (strace -c) during a third.
# Usage: [CLIENTS="1 64"] node/scripts/profile-leader.sh [BIN_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release}
OUT=${2:-/tmp/ics-profile}
read -r -a CLIENTS <<<"${CLIENTS:-1 64}"
for tool in perf:linux-perf strace:strace curl:curl; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool#*:}" >/dev/null; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

. node/scripts/loopback-cluster.sh
base=37700
start_loopback_cluster 3 "$base"
metrics() { curl -sf --cacert "$ICS_TLS_DIR/ca.crt" "https://127.0.0.1:$((base + 50 + $1))/metrics"; }
leader=""
for _ in $(seq 1 100); do
  for i in 1 2 3; do metrics "$i" 2>/dev/null | grep -q '^ics_raft_is_leader 1' && leader=$i; done
  [ -n "$leader" ] && break; sleep 0.1
done
[ -n "$leader" ] || { echo "no leader" >&2; exit 1; }
PID=${PIDS[$((leader - 1))]}
S="127.0.0.1:$((base + leader))"
bench() { "$BIN/icsctl" -s "$S" bench --signer "$AUTHOR" --clients "$1" --requests "$2"; }
bench 4 200 >/dev/null

# Sum and count of each stage's histogram, per run (the difference of two scrapes).
stages() {
  metrics "$leader" | awk '/^ics_(write_stage_seconds|append_seconds|raft_entries_written|events_appended)(_sum|_count|_total)?[{ ]/ {print $1, $2}'
}
for c in "${CLIENTS[@]}"; do
  n=$(( c == 1 ? 3000 : 20000 / c ))
  {
    echo "## $c client(s), $((c * n)) appends, leader node $leader ($(nproc) cores, $(uname -r))"
    stages >"$WORK/before"
    bench "$c" "$n"
    stages >"$WORK/after"
    echo "### time per stage (mean over the run)"
    python3 - "$WORK/before" "$WORK/after" <<'PY'
import sys
def load(p):
    return {k: float(v) for k, v in (l.split() for l in open(p))}
a, b = load(sys.argv[1]), load(sys.argv[2])
d = {k: b[k] - a.get(k, 0.0) for k in b}
entries = d.get("ics_raft_entries_written_total", 0)
events = d.get("ics_events_appended_total", 0)
print(f"raft entries {entries:.0f}, events {events:.0f}, events per entry {events / max(entries, 1):.1f}")
for k in sorted(d):
    name, _, labels = k.partition("{")
    if name.endswith("_sum"):
        count = d[name[:-4] + "_count" + ("{" + labels if labels else "")]
        if count:
            what = name[:-4] + (" " + labels.rstrip("}") if labels else "")
            print(f"{what:60} n={count:8.0f}  mean {d[k] / count * 1e3:8.3f} ms")
PY
    echo "### CPU profile of the leader (perf, flat)"
    perf record -q -F 999 -p "$PID" -o "$WORK/perf.data" 2>/dev/null &
    perf_pid=$!
    sleep 0.5
    bench "$c" "$n" >/dev/null
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol 2>/dev/null |
      grep -v '^#' | grep -v '^$' >"$WORK/symbols"
    python3 - "$WORK/symbols" <<'PY'
import re, sys
parts = {
    "signatures (ed25519/p256/sha2)": r"curve25519|ed25519|p256|sha2|Sha512|scalar|edwards|field|montgomery",
    "TLS (rustls, aws-lc/ring)": r"rustls|aws_lc|ring|aes|gcm|chacha|poly1305|gfmul",
    "gRPC/HTTP2 (tonic, h2, hyper, prost)": r"tonic|h2::|hyper|prost|http::",
    "sled": r"sled::",
    "openraft": r"openraft",
    "kernel and projections (ics_*)": r"ics_",
    "hashing (blake3)": r"blake3",
    "memory (malloc, memcpy)": r"malloc|free|memcpy|memmove|realloc|cfree|_int_",
    "tokio runtime": r"tokio",
    "operating system kernel": r"\[k\]",
}
totals = {k: 0.0 for k in parts}
other = 0.0
lines = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+(.*)", line)
    if not m:
        continue
    share, sym = float(m.group(1)), m.group(2)
    lines.append((share, sym.strip()))
    for k, pat in parts.items():
        if re.search(pat, sym):
            totals[k] += share
            break
    else:
        other += share
for k, v in sorted(totals.items(), key=lambda kv: -kv[1]):
    print(f"{v:6.1f}%  {k}")
print(f"{other:6.1f}%  other")
print("top symbols:")
for share, sym in lines[:15]:
    print(f"{share:6.2f}%  {sym[:110]}")
PY
    echo "### system calls of the leader per Raft entry (strace -c)"
    stages >"$WORK/before"
    strace -f -c -q -p "$PID" -o "$WORK/strace" &
    strace_pid=$!
    sleep 0.5
    bench "$c" "$(( n / 4 ))" >/dev/null
    kill -INT "$strace_pid"; wait "$strace_pid" 2>/dev/null || true
    stages >"$WORK/after"
    entries=$(python3 -c '
import sys
def load(p): return {k: float(v) for k, v in (l.split() for l in open(p))}
a, b = load(sys.argv[1]), load(sys.argv[2])
print(int(b["ics_raft_entries_written_total"] - a.get("ics_raft_entries_written_total", 0)),
      int(b["ics_events_appended_total"] - a.get("ics_events_appended_total", 0)))' "$WORK/before" "$WORK/after")
    read -r ents evs <<<"$entries"
    awk -v e="$ents" -v v="$evs" 'NR > 2 && $NF != "total" && $1 ~ /^[0-9.]+$/ {
        printf "%-18s %9d calls  %7.2f per entry  %7.2f per event\n", $NF, $4, $4 / (e ? e : 1), $4 / (v ? v : 1) }' \
      "$WORK/strace" | sort -k2 -n -r | head -14
    echo "(over $ents Raft entries, $evs events)"
    echo
  } | tee "$OUT/profile-$c.txt"
done
