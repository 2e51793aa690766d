#!/usr/bin/env bash
# Device CA figures on a 3-node cluster (loopback, every node a real icsd,
# every issued certificate fdatasynced on a quorum before its answer):
# issuance over gRPC and over EST (simplereenroll: a TLS handshake with the
# device's certificate, Verify against the log, issuance; a new connection
# per request), OCSP answers, at 1 and 64 clients; and the time from a
# stolen report's acknowledgement to a revoked OCSP answer.
# Usage: node/scripts/ca-bench.sh [BIN_DIR]  (icsd and icsctl; default
# target/release). PHASE_SECONDS (default 10) and STOLEN (default 20) from
# the environment. One JSON line per phase.
set -euo pipefail
BIN=${1:-target/release}
PHASE_SECONDS=${PHASE_SECONDS:-10}
STOLEN=${STOLEN:-20}
DIR=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
. "$(dirname "$0")/cluster3.sh"
BASE=27000
start_cluster3 "$BIN" "$DIR" "$BASE"
# The node holding the root key binds the device CA after the genesis.
for _ in $(seq 120); do
  [ "$(ctl --json subjects --kind device-ca 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.5
done
for clients in 1 64; do
  stolen=0
  [ "$clients" = 1 ] && stolen=$STOLEN
  ctl --json bench-ca --signer "$DIR/k.key" --clients "$clients" --seconds "$PHASE_SECONDS" \
    --est "127.0.0.1:$((BASE + 71))" --ocsp "127.0.0.1:$((BASE + 81))" --stolen "$stolen"
done
