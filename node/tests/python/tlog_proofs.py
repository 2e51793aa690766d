"""Verifies an ICS's inclusion and consistency proofs with RFC 9162's
algorithms (sections 2.1.3.2 and 2.1.4.2) written here from the RFC, sharing
no code with the ICS: reads JSON lines (`icsctl --json log proof` and
`icsctl --json log consistency` output) on stdin, checks each proof against
the root it names and the expected current root, and checks that a bent
proof, another leaf and a forked root are each refused.

usage: tlog_proofs.py CURRENT_SIZE CURRENT_ROOT_HEX < proofs.jsonl
prints one JSON line; exits 1 when anything does not hold."""

import hashlib
import json
import sys


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def verify_inclusion(index, size, leaf_hash, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if first > second or not proof:
        return False
    path = ([first_root] if first & (first - 1) == 0 else []) + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


def bent(proof):
    if not proof:
        return [b"\x00" * 32]
    first = bytearray(proof[0])
    first[0] ^= 1
    return [bytes(first)] + proof[1:]


size, current_root = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
problems, inclusions, consistencies = [], 0, 0
for line in sys.stdin:
    p = json.loads(line)
    hashes = [bytes.fromhex(h) for h in p["hashes"]]
    if "leaf_index" in p:
        inclusions += 1
        i, n, root = p["leaf_index"], p["tree_size"], bytes.fromhex(p["root"])
        lh = leaf(bytes.fromhex(p["leaf_entry"]))
        if n == size and root != current_root:
            problems.append(f"leaf {i}: root at size {n} is not the node's current root")
        if not verify_inclusion(i, n, lh, hashes, root):
            problems.append(f"inclusion of leaf {i} in {n} does not verify")
        if verify_inclusion(i, n, lh, bent(hashes), root):
            problems.append(f"a bent inclusion proof of leaf {i} verified")
        if n > 1 and verify_inclusion((i + 1) % n, n, lh, hashes, root):
            problems.append(f"leaf {i}'s proof verified for another index")
        if verify_inclusion(i, n, leaf(b"not an event"), hashes, root):
            problems.append(f"leaf {i}'s proof verified for another entry")
    else:
        consistencies += 1
        m, n = p["old_size"], p["new_size"]
        r1, r2 = bytes.fromhex(p["old_root"]), bytes.fromhex(p["new_root"])
        if not verify_consistency(m, n, r1, r2, hashes):
            problems.append(f"consistency {m} -> {n} does not verify")
        forked = hashlib.sha256(b"fork").digest()
        if 0 < m and verify_consistency(m, n, r1, forked, hashes):
            problems.append(f"consistency {m} -> {n} verified against a forked root")
        if 0 < m < n and verify_consistency(m, n, r1, r2, bent(hashes)):
            problems.append(f"a bent consistency proof {m} -> {n} verified")

print(json.dumps({"inclusions": inclusions, "consistencies": consistencies, "problems": problems}))
sys.exit(1 if problems or not inclusions or not consistencies else 0)
