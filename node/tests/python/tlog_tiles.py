"""Checks an ICS's transparency log from outside, sharing no code with it:
fetches every entry bundle and level-0 hash tile over HTTPS (C2SP tlog-tiles),
recomputes the RFC 6962 root with its own hashing and with pymerkle, and
compares it with the root the node reports. A tampered bundle must give
another root, and the tile grammar's edges must be refused.

usage: tlog_tiles.py BASE_URL CA_FILE SIZE ROOT_HEX
prints one JSON line; exits 1 when anything does not hold."""

import hashlib
import json
import ssl
import sys
import urllib.error
import urllib.request

from pymerkle import InmemoryTree

base, ca, size, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
context = ssl.create_default_context(cafile=ca)
problems = []


def get(path):
    try:
        with urllib.request.urlopen(f"{base}/{path}", context=context, timeout=10) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def index_path(n):
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tile_path(level, n, width):
    return f"tile/{level}/{index_path(n)}" + ("" if width == 256 else f".p/{width}")


def leaf(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(hashes):
    """RFC 6962 section 2.1, as written."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))


def bundle_entries(body):
    out, i = [], 0
    while i < len(body):
        length = int.from_bytes(body[i:i + 2], "big")
        out.append(body[i + 2:i + 2 + length])
        i += 2 + length
    return out


entries, tiles_read = [], 0
for n in range((size + 255) // 256):
    width = min(256, size - n * 256)
    status, body, headers = get(tile_path("entries", n, width))
    if status != 200:
        problems.append(f"entry bundle {n}: HTTP {status}")
        continue
    if "immutable" not in headers.get("Cache-Control", ""):
        problems.append(f"entry bundle {n} is not marked immutable")
    got = bundle_entries(body)
    if len(got) != width:
        problems.append(f"entry bundle {n} holds {len(got)} entries, not {width}")
    entries.extend(got)
    status, body, _ = get(tile_path(0, n, width))
    tiles_read += 2
    hashes = [body[i:i + 32] for i in range(0, len(body), 32)]
    if status != 200 or hashes != [leaf(e) for e in got]:
        problems.append(f"hash tile 0/{n} does not hold the leaf hashes of its entries")

if any(len(e) != 48 for e in entries):
    problems.append("an entry is not 48 bytes (salt and SHA-256)")
ours = mth([leaf(e) for e in entries]) if entries else hashlib.sha256(b"").digest()
tree = InmemoryTree(algorithm="sha256")
for e in entries:
    tree.append_entry(e)
theirs = tree.get_root()
if ours != want:
    problems.append(f"recomputed root {ours.hex()} is not the node's {want.hex()}")
if theirs != want:
    problems.append(f"pymerkle's root {theirs.hex()} is not the node's {want.hex()}")

# One flipped bit in one entry: another root, so a tampered copy is caught.
tampered = [bytearray(e) for e in entries]
tampered[len(tampered) // 2][20] ^= 1
tampered_root = mth([leaf(bytes(e)) for e in tampered])
tampered_rejected = tampered_root != want
if not tampered_rejected:
    problems.append("a tampered entry gave the same root")

# The grammar's edges: beyond the log, a width the log does not have yet,
# a malformed path.
edges = {
    "beyond": get(tile_path(0, (size + 255) // 256 + 1, 256))[0],
    "too_wide": get(tile_path("entries", size // 256, 256))[0] if size % 256 else 404,
    "malformed": get("tile/0/1")[0],
}
if edges != {"beyond": 404, "too_wide": 404, "malformed": 400}:
    problems.append(f"tile edges answered {edges}")

print(json.dumps({"size": size, "tiles_read": tiles_read, "root": ours.hex(),
                  "pymerkle_root": theirs.hex(), "tampered_rejected": tampered_rejected,
                  "edges": edges, "problems": problems}))
sys.exit(1 if problems else 0)
