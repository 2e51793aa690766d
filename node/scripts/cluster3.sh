# Sourced by the bench scripts: a 3-node TLS cluster of `icsd` on loopback.
# start_cluster3 BIN DIR BASE: node i serves gRPC on BASE+i, its peer listener
# on BASE+20+i, HTTPS on BASE+50+i, the device listener (EST, ingestion) on
# BASE+70+i and plain loopback HTTP on BASE+80+i, data under DIR/n<i>; the
# party runs a device CA (operational); the node PIDs are
# added to PIDS. Defines ctl (icsctl as the operator, against node 1), waits
# until the cluster is ready, and registers an author key DIR/k.key.
start_cluster3() {
  local bin=$1 dir=$2 base=$3 i
  "$bin/icsd" tls init --party maintenance --role maintenance --out "$dir/tls" \
    --node 1=127.0.0.1 --node 2=127.0.0.1 --node 3=127.0.0.1 >/dev/null
  for i in 1 2 3; do
    mkdir -p "$dir/n$i" && cp -r "$dir/tls/node-$i" "$dir/n$i/tls"
    "$bin/icsd" serve --node-id "$i" --data-dir "$dir/n$i" --listen "127.0.0.1:$((base + i))" \
      --http-listen "127.0.0.1:$((base + 50 + i))" --peer-listen "127.0.0.1:$((base + 20 + i))" \
      --device-listen "127.0.0.1:$((base + 70 + i))" --http-plain-listen "127.0.0.1:$((base + 80 + i))" \
      --peer "1=127.0.0.1:$((base + 21))" --peer "2=127.0.0.1:$((base + 22))" --peer "3=127.0.0.1:$((base + 23))" \
      >"$dir/n$i.log" 2>&1 &
    PIDS+=($!)
  done
  CTL_BIN=$bin CTL_DIR=$dir CTL_SERVER="127.0.0.1:$((base + 1))"
  ctl() { ICS_TLS_DIR="$CTL_DIR/tls/operator-admin" "$CTL_BIN/icsctl" --server "$CTL_SERVER" "$@"; }
  for _ in $(seq 120); do
    [ -f "$dir/n1/root.key" ] && ctl cluster ready >/dev/null 2>&1 && break
    sleep 0.5
  done
  ctl key generate --out "$dir/k.key" >/dev/null
  ctl author add --signer "$dir/n1/root.key" --key "$dir/k.key" --label bench >/dev/null
}
