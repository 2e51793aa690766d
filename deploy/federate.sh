#!/usr/bin/env bash
# Wires the demo federation of deploy/compose.yaml, once, after
# `docker-compose -f deploy/compose.yaml -p PROJECT up -d`:
#   deploy/federate.sh [PROJECT]      (default ics-demo)
# Each party recognizes the parties it deals with by their root keys, binds
# the transparency-log keys of the parties it pulls from, and publishes its
# policy from deploy/policies/ with the peers' TLS CAs filled in. Every step
# runs the image's own icsctl inside the party's container, signed by the
# party root key there; nothing secret leaves a container.
set -euo pipefail
PROJECT=${1:-ics-demo}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
compose() { docker-compose -f "$HERE/compose.yaml" -p "$PROJECT" "$@"; }

# Each party: the service its icsctl runs in, and the operator's TLS directory there.
declare -A SERVICE=([acme-maintenance]=maintenance-1 [thermo-devices]=manufacturer
  [firmware-works]=developer [site-gateway-01]=infield)
declare -A TLS=([acme-maintenance]=/tls/operator-admin [thermo-devices]=/data/tls
  [firmware-works]=/data/tls [site-gateway-01]=/data/tls)
declare -A ROLE=([acme-maintenance]=maintenance [thermo-devices]=manufacturer
  [firmware-works]=developer [site-gateway-01]=infield)
PARTIES=(acme-maintenance thermo-devices firmware-works site-gateway-01)

container() { compose ps -q "${SERVICE[$1]}"; }
ctl() {
  local party=$1
  shift
  compose exec -T "${SERVICE[$party]}" /usr/local/bin/icsctl --server 127.0.0.1:7400 \
    --tls-dir "${TLS[$party]}" "$@"
}
# A string field of icsctl's one-line JSON.
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

declare -A PUBLIC VKEY
for p in "${PARTIES[@]}"; do
  shown=$(ctl "$p" --json key show /data/root.key)
  PUBLIC[$p]="$(field algorithm <<<"$shown"):$(field public_key <<<"$shown")"
  docker cp "$(container "$p"):${TLS[$p]}/ca.crt" "$WORK/$p.crt"
  # The first checkpoint comes shortly after the node starts.
  for _ in $(seq 60); do
    VKEY[$p]=$(ctl "$p" --json log checkpoint 2>/dev/null | field vkey || true)
    [ -n "${VKEY[$p]}" ] && break
    sleep 1
  done
  [ -n "${VKEY[$p]}" ] || { echo "no checkpoint at $p" >&2; exit 1; }
done

# me other [pull]: me recognizes other; with pull, binds other's log key.
recognize() {
  ctl "$1" recognize --signer /data/root.key --party "$2" --role "${ROLE[$2]}" \
    --root-public "${PUBLIC[$2]}" >/dev/null
  if [ "${3:-}" = pull ]; then
    ctl "$1" log peer --signer /data/root.key --party "$2" --vkey "${VKEY[$2]}" >/dev/null
  fi
  echo "$1 recognizes $2${3:+ and pulls from it}"
}
recognize acme-maintenance thermo-devices pull
recognize acme-maintenance firmware-works pull
recognize acme-maintenance site-gateway-01
recognize thermo-devices acme-maintenance pull
recognize firmware-works acme-maintenance
recognize site-gateway-01 acme-maintenance pull
# The gateway checks the records it imports by their authors' parties.
recognize site-gateway-01 thermo-devices
recognize site-gateway-01 firmware-works

for p in "${PARTIES[@]}"; do
  policy="$WORK/$p.toml"
  cp "$HERE/policies/$p.toml" "$policy"
  for peer in "${PARTIES[@]}"; do
    awk -v marker="@CA:$peer@" -v file="$WORK/$peer.crt" '
      (i = index($0, marker)) {
        while ((getline line < file) > 0) print line
        print substr($0, i + length(marker)); next
      }
      { print }
    ' "$policy" >"$policy.next"
    mv "$policy.next" "$policy"
  done
  docker cp "$policy" "$(container "$p"):/data/policy.toml"
  ctl "$p" policy publish --signer /data/root.key --file /data/policy.toml >/dev/null
  echo "$p published its policy"
done
