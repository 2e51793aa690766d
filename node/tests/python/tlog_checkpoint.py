"""Checks an ICS's signed checkpoint from outside, sharing no code with it:
fetches /checkpoint over HTTPS, verifies the C2SP signed note under the log's
verifier key (its own note parsing, Ed25519 by `cryptography`), then fetches
the level-0 hash tiles up to the checkpoint's size and recomputes the RFC 6962
root with its own hashing. A checkpoint with a bent signature and one for the
same size with another root (a fork, properly signed) must be refused.

usage: tlog_checkpoint.py BASE_URL CA_FILE VKEY FORKED_NOTE_FILE
prints one JSON line; exits 1 when anything does not hold."""

import base64
import hashlib
import json
import ssl
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

base, ca, vkey, fork_file = sys.argv[1:5]
context = ssl.create_default_context(cafile=ca)


class Refused(Exception):
    pass


def get(path):
    with urllib.request.urlopen(f"{base}/{path}", context=context, timeout=10) as r:
        return r.read()


def parse_vkey(vkey):
    # <name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 key)>
    name, key_id, key = vkey.split("+", 2)
    raw = base64.b64decode(key)
    if raw[0] != 0x01 or len(raw) != 33:
        raise Refused("not an Ed25519 verifier key")
    want_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want_id.hex() != key_id:
        raise Refused("verifier key id does not match its name and key")
    return name, want_id, Ed25519PublicKey.from_public_bytes(raw[1:])


def verify_note(note, name, key_id, key):
    """The checkpoint (origin, size, root) of a note signed by the key."""
    text_end = note.rindex(b"\n\n") + 1
    text, lines = note[:text_end], note[text_end + 1 :].decode().splitlines()
    verified = False
    for line in lines:
        if not line.startswith("\u2014 "):
            raise Refused("a signature line without the em dash")
        signer, sig = line[2:].split(" ")
        raw = base64.b64decode(sig)
        if signer != name or raw[:4] != key_id:
            continue
        try:
            key.verify(raw[4:], text)
        except InvalidSignature:
            raise Refused("the log's signature does not verify")
        verified = True
    if not verified:
        raise Refused("no signature by the log's key")
    origin, size, root = text.decode().rstrip("\n").split("\n")
    if origin != name:
        raise Refused(f"origin {origin!r} is not {name!r}")
    return origin, int(size), base64.b64decode(root)


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(hashes):
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node(mth(hashes[:k]), mth(hashes[k:]))


def index_path(n):
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tiles_root(size):
    leaves = []
    for t in range((size + 255) // 256):
        width = min(256, size - t * 256)
        path = f"tile/0/{index_path(t)}" + ("" if width == 256 else f".p/{width}")
        body = get(path)
        if len(body) != 32 * width:
            raise Refused(f"{path}: {len(body)} bytes")
        leaves += [body[i : i + 32] for i in range(0, len(body), 32)]
    return mth(leaves)


name, key_id, key = parse_vkey(vkey)
report = {}
note = get("checkpoint")
origin, size, root = verify_note(note, name, key_id, key)
report["origin"], report["size"] = origin, size
report["root_matches_tiles"] = tiles_root(size) == root


def refused(note):
    """Whether this checker refuses `note` as a checkpoint of the log seen."""
    try:
        _, other_size, other_root = verify_note(note, name, key_id, key)
    except (Refused, ValueError):
        return True
    # Properly signed: it must agree with the tree the tiles show.
    return other_size <= size and other_root != tiles_root(other_size)


bent = bytearray(note)
bent[-10] ^= 0x01
report["bent_signature_refused"] = refused(bytes(bent))
with open(fork_file, "rb") as f:
    fork = f.read()
fork_checkpoint = verify_note(fork, name, key_id, key)
report["fork_signature_valid"] = fork_checkpoint[1] == size
report["fork_refused"] = refused(fork)
report["honest_accepted"] = not refused(note)
print(json.dumps(report))
sys.exit(0 if all(v for k, v in report.items() if k not in ("origin", "size")) else 1)
