#!/usr/bin/env python3
"""Federation figures between parties on loopback, every node a real `icsd`.

Parties: acme (manufacturer, one node) holding EVENTS device records;
globex (manufacturer, one node) adding one record at a time; maintenance
(three nodes, fdatasync on a quorum) importing from both over mutual TLS.

Measured, one JSON line each:
- initial_sync: acme's records pulled, proven and imported by maintenance
  (events/s, bytes acme served, seconds);
- resync_100: 100 new records at acme, from the append's acknowledgement
  to maintenance's cursor covering them (seconds, bytes served);
- repull_source_policy_changed: the source publishes a new policy version;
  the puller pulls again saying what it holds (seconds, bytes served);
- importer_policy_changed_same_terms: the importer's policy changes but
  not what it imports from the source: nothing is fetched again;
- repull_importer_widened: the importer imports more from the source; every
  shared event comes again, held ones are no-ops (seconds, bytes served);
- flood_isolation: the time from a record's acknowledgement at globex to
  maintenance holding it, while acme's initial sync floods maintenance and
  again with nothing else running (p50/p99 of PROBES each).

Usage: node/scripts/federation-bench.py [BIN_DIR]  (icsd and icsctl; default
target/release). EVENTS (default 100000) and PROBES (default 20) from the
environment.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release"
EVENTS = int(os.environ.get("EVENTS", "100000"))
PROBES = int(os.environ.get("PROBES", "20"))
# Pull and checkpoint every 100 ms; quotas far above the rates measured, so
# the figures are the mechanism's, not the policy's pacing.
FAST = """[tlog]
checkpoint_interval_ms = 100
[federation]
pull_interval_ms = 100
contact_interval_ms = 1000
"""
QUOTAS = "[quotas]\nevents_per_minute = 60000000\nmax_events_per_pull = 10000\n"

work = tempfile.mkdtemp(prefix="fed-bench-")
procs = []


def run(*args, tls, server, check=True):
    env = dict(os.environ, ICS_TLS_DIR=tls)
    r = subprocess.run([f"{BIN}/icsctl", "--server", server, *args],
                       env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"icsctl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


class Party:
    def __init__(self, name, role, base, nodes=1):
        self.name, self.base, self.nodes = name, base, nodes
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        config = os.path.join(self.dir, "config.toml")
        with open(config, "w") as f:
            f.write(FAST)
        if nodes > 1:
            tls_init = [f"{BIN}/icsd", "tls", "init", "--party", name, "--out",
                        os.path.join(self.dir, "tls")]
            for i in range(1, nodes + 1):
                tls_init += ["--node", f"{i}=127.0.0.1"]
            subprocess.run(tls_init, check=True, capture_output=True)
        for i in range(1, nodes + 1):
            data = os.path.join(self.dir, f"n{i}")
            os.makedirs(data)
            args = [f"{BIN}/icsd", "serve", "-c", config, "--role", role, "--party", name,
                    "--node-id", str(i), "--data-dir", data,
                    "--listen", f"127.0.0.1:{base + i}",
                    "--http-listen", f"127.0.0.1:{base + 10 + i}",
                    "--http-plain-listen", f"127.0.0.1:{base + 20 + i}",
                    "--federation-listen", f"127.0.0.1:{base + 30 + i}",
                    "--peer-listen", f"127.0.0.1:{base + 40 + i}"]
            if nodes > 1:
                shutil.copytree(os.path.join(self.dir, "tls", f"node-{i}"),
                                os.path.join(data, "tls"))
                for j in range(1, nodes + 1):
                    args += ["--peer", f"{j}=127.0.0.1:{base + 40 + j}"]
            log = open(os.path.join(self.dir, f"n{i}.log"), "w")
            procs.append(subprocess.Popen(args, stdout=log, stderr=log))
        self.tls = (os.path.join(self.dir, "tls", "operator-admin") if nodes > 1
                    else os.path.join(self.dir, "n1", "tls"))
        self.ca = os.path.join(self.dir, "tls", "ca", "ca.crt") if nodes > 1 \
            else os.path.join(self.dir, "n1", "tls", "ca.crt")
        self.root = os.path.join(self.dir, "n1", "root.key")
        self.server = f"127.0.0.1:{base + 1}"
        self.federation = f"127.0.0.1:{base + 31}"

    def ctl(self, *args, check=True):
        return run(*args, tls=self.tls, server=self.server, check=check)

    def json(self, *args):
        return json.loads(self.ctl("--json", *args).strip().splitlines()[-1])

    def wait_ready(self):
        for _ in range(240):
            if os.path.exists(self.root) and \
                    subprocess.run([f"{BIN}/icsctl", "--server", self.server, "cluster", "ready"],
                                   env=dict(os.environ, ICS_TLS_DIR=self.tls),
                                   capture_output=True).returncode == 0:
                return
            time.sleep(0.5)
        raise SystemExit(f"{self.name} did not become ready")

    def author(self):
        key = os.path.join(self.dir, "author.key")
        self.ctl("key", "generate", "--out", key)
        self.ctl("author", "add", "--signer", self.root, "--key", key, "--label", "bench")
        return key

    def root_public(self):
        shown = self.json("key", "show", self.root)
        return f"{shown['algorithm']}:{shown['public_key']}"

    def metric(self, name, peer, node=1):
        url = f"http://127.0.0.1:{self.base + 20 + node}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        m = re.search(r'^%s\{peer="%s"\} (\d+)' % (re.escape(name), re.escape(peer)), text, re.M)
        return int(m.group(1)) if m else 0

    def checkpoint_size(self):
        return int(self.json("log", "checkpoint")["size"])

    def bench(self, key, clients, requests, batch):
        return self.json("bench", "--signer", key, "--clients", str(clients),
                         "--requests", str(requests), "--batch", str(batch))

    def pem(self):
        with open(self.ca) as f:
            return f.read()


def peer(name, endpoints, pem):
    eps = ", ".join(f'"{e}"' for e in endpoints)
    return f'[[peer]]\nname = "{name}"\nendpoints = [{eps}]\ntls_ca = """\n{pem}"""\n\n'


def publish(party, version, document):
    path = os.path.join(party.dir, f"policy-{version}.toml")
    with open(path, "w") as f:
        f.write(document)
    party.ctl("policy", "publish", "--signer", party.root, "--file", path)


def source_policy(name, maint):
    return (f'party = "{name}"\nversion = 1\n\n{QUOTAS}\n' + peer("maintenance", [], maint.pem())
            + '[[domain]]\nname = "devices"\nsubjects = ["device"]\n\n'
            + '[[read]]\npeer = "maintenance"\ndomain = "devices"\nkinds = ["*"]\n')


def maint_policy(version, sources):
    doc = f'party = "maintenance"\nversion = {version}\n\n{QUOTAS}\n'
    for s in sources:
        doc += peer(s.name, [s.federation], s.pem())
    for s in sources:
        doc += f'[[domain]]\nname = "{s.name}-devices"\nsubjects = ["device"]\nnamespace = "{s.name}"\n\n'
        doc += f'[[import]]\npeer = "{s.name}"\ndomain = "{s.name}-devices"\nkinds = ["*"]\n\n'
    return doc


def wait_for(what, check, timeout=900, step=0.01):
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start


def on_leader(maint, name, peer_name):
    """A pull figure: only the leader pulls, so the largest over the nodes."""
    return max(maint.metric(name, peer_name, n) for n in range(1, maint.nodes + 1))


def cursor(maint, peer_name):
    return on_leader(maint, "ics_federation_cursor_size", peer_name)


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def probe(globex, key, maint):
    """One record at globex: seconds from its acknowledgement to maintenance's cursor covering it."""
    globex.bench(key, 1, 1, 1)
    acked = time.monotonic()
    size = int(globex.json("cluster", "status")["event_count"])
    wait_for("maintenance to pull globex's record", lambda: cursor(maint, "globex") >= size,
             timeout=120, step=0.005)
    return time.monotonic() - acked


def emit(run_name, **result):
    print(json.dumps({"run": run_name, **result}), flush=True)


def main():
    maint = Party("maintenance", "maintenance", 7900, nodes=3)
    acme = Party("acme", "manufacturer", 7950)
    globex = Party("globex", "manufacturer", 8000)
    for p in (maint, acme, globex):
        p.wait_ready()
    emit("machine", cores=os.cpu_count(), events=EVENTS, probes=PROBES,
         kernel=os.uname().release, pull_interval_ms=100, checkpoint_interval_ms=100)

    acme_key, globex_key = acme.author(), globex.author()
    batches = EVENTS // 100
    load = acme.bench(acme_key, 8, batches // 8, 100) if batches >= 8 else acme.bench(acme_key, 1, batches, 100)
    emit("load_at_source", **load)

    for s in (acme, globex):
        maint.ctl("recognize", "--signer", maint.root, "--party", s.name, "--role", "manufacturer",
                  "--root-public", s.root_public())
        s.ctl("recognize", "--signer", s.root, "--party", "maintenance", "--role", "maintenance",
              "--root-public", maint.root_public())
        publish(s, 1, source_policy(s.name, maint))
        vkey = s.json("log", "checkpoint")["vkey"]
        maint.ctl("log", "peer", "--signer", maint.root, "--party", s.name, "--vkey", vkey)
    # globex first, so its task is pulling before acme's flood starts.
    publish(maint, 1, maint_policy(1, [globex]))
    wait_for("globex's first sync", lambda: cursor(maint, "globex") > 0, timeout=120)

    time.sleep(1)
    target = acme.checkpoint_size()
    served0 = acme.metric("ics_federation_bytes_served_total", "maintenance")
    started = time.monotonic()
    publish(maint, 2, maint_policy(2, [globex, acme]))
    flooded = []
    done = threading.Event()

    def flood_probes():
        while not done.is_set() and len(flooded) < PROBES:
            flooded.append(probe(globex, globex_key, maint))

    prober = threading.Thread(target=flood_probes)
    prober.start()
    wait_for("the initial sync", lambda: cursor(maint, "acme") >= target, step=0.05)
    seconds = time.monotonic() - started
    done.set()
    prober.join()
    imported = on_leader(maint, "ics_federation_imported_total", "acme")
    served = acme.metric("ics_federation_bytes_served_total", "maintenance") - served0
    emit("initial_sync", source_size=target, imported=imported, seconds=round(seconds, 2),
         events_per_second=round(imported / seconds), bytes_served=served,
         bytes_per_event=round(served / max(imported, 1)))

    quiet = [probe(globex, globex_key, maint) for _ in range(PROBES)]
    ms = lambda xs, q: round(percentile(xs, q) * 1000, 1)
    emit("flood_isolation", probes_during_flood=len(flooded),
         during_flood_ms_p50=ms(flooded, 0.5) if flooded else None,
         during_flood_ms_p99=ms(flooded, 0.99) if flooded else None,
         quiet_ms_p50=ms(quiet, 0.5), quiet_ms_p99=ms(quiet, 0.99))

    time.sleep(1)
    served0 = acme.metric("ics_federation_bytes_served_total", "maintenance")
    acme.bench(acme_key, 1, 1, 100)
    acked = time.monotonic()
    size = int(acme.json("cluster", "status")["event_count"])
    wait_for("100 new events", lambda: cursor(maint, "acme") >= size)
    seconds = time.monotonic() - acked
    served = acme.metric("ics_federation_bytes_served_total", "maintenance") - served0
    emit("resync_100", store=size, seconds=round(seconds, 3), bytes_served=served)

    # The source's policy changes (a new version, the same rules): the
    # puller says what it holds and is sent only what is new.
    time.sleep(1)
    served0 = acme.metric("ics_federation_bytes_served_total", "maintenance")
    started = time.monotonic()
    publish(acme, 2, source_policy("acme", maint).replace("version = 1", "version = 2"))
    wait_for("the re-pull after the source's change",
             lambda: cursor_policies(maint, "acme")[0] >= 2, step=0.05)
    seconds = time.monotonic() - started
    served = acme.metric("ics_federation_bytes_served_total", "maintenance") - served0
    emit("repull_source_policy_changed", store=acme.checkpoint_size(), seconds=round(seconds, 2),
         bytes_served=served)

    # The importer's own policy changes without touching its terms of import
    # from acme: nothing to fetch again.
    time.sleep(1)
    served0 = acme.metric("ics_federation_bytes_served_total", "maintenance")
    started = time.monotonic()
    publish(maint, 3, maint_policy(3, [globex, acme]))
    wait_for("the cursor under the importer's new version",
             lambda: cursor_policies(maint, "acme")[1] >= 3, step=0.05)
    seconds = time.monotonic() - started
    served = acme.metric("ics_federation_bytes_served_total", "maintenance") - served0
    emit("importer_policy_changed_same_terms", store=acme.checkpoint_size(),
         seconds=round(seconds, 2), bytes_served=served)

    # The importer widens what it imports from acme: everything acme shares
    # comes again (it may accept now what it refused); held ones are no-ops.
    time.sleep(1)
    served0 = acme.metric("ics_federation_bytes_served_total", "maintenance")
    held = on_leader(maint, "ics_federation_imported_total", "acme")
    dup0 = status_duplicates(maint, "acme")
    started = time.monotonic()
    widened = maint_policy(4, [globex, acme]) + \
        '[[import]]\npeer = "acme"\ndomain = "acme-devices"\nkinds = ["device-registered"]\n'
    publish(maint, 4, widened)
    wait_for("the re-pull after the importer widened",
             lambda: cursor_policies(maint, "acme")[1] >= 4, step=0.05)
    seconds = time.monotonic() - started
    served = acme.metric("ics_federation_bytes_served_total", "maintenance") - served0
    emit("repull_importer_widened", store=acme.checkpoint_size(), seconds=round(seconds, 2),
         bytes_served=served, duplicates=status_duplicates(maint, "acme") - dup0,
         imported_new=on_leader(maint, "ics_federation_imported_total", "acme") - held)


def cursor_policies(maint, peer_name):
    status = maint.json("federation", "status")
    return next((p["cursor_policies"] for p in status["peers"] if p["party"] == peer_name), [0, 0])


def status_duplicates(maint, peer_name):
    status = maint.json("federation", "status")
    return sum(p["duplicates"] for p in status["peers"] if p["party"] == peer_name)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if os.environ.get("KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
