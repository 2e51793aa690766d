//! RFC 6962/9162 Merkle tree arithmetic: leaf and interior hashing, the
//! frontier an appender keeps, subtree hashes from stored finished nodes, and
//! inclusion and consistency proofs with their verification (RFC 9162
//! §2.1.3 and §2.1.4, step by step).
//!
//! A finished node is the root of a perfect subtree: at `level` h and
//! `index` i it covers leaves `[i·2^h, (i+1)·2^h)`. Stores keep finished nodes
//! only; the hash of a range whose right edge is not a finished node is
//! computed from the finished nodes it decomposes into.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The most levels a tree of `u64` leaves has above its leaves.
pub const MAX_LEVEL: u8 = 63;

/// `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Sizes no proof exists for; building and verifying a proof refuse them alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("leaf {index} is not in a tree of size {size}")]
    LeafOutOfRange { index: u64, size: u64 },
    #[error("size {old} does not precede size {new}")]
    BadSizes { old: u64, new: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("tree node at level {level} index {index} is not stored")]
    Missing { level: u8, index: u64 },
    #[error(transparent)]
    Sizes(#[from] SizeError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Sizes(#[from] SizeError),
    #[error("the proof has {0} hashes, which is the wrong number for these sizes")]
    WrongLength(usize),
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// Where finished nodes are read from.
pub trait NodeHashes {
    /// The finished node at `level`, `index`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, TreeError>;
}

/// The largest power of two strictly below `n` (n ≥ 2): RFC 6962's split.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` for a range as RFC 6962's recursion forms it: `start`
/// aligned to the smallest power of two at least `end - start`. The range
/// is the finished nodes it decomposes into, greedily from the left, folded
/// from the right.
pub fn range_hash(store: &impl NodeHashes, start: u64, end: u64) -> Result<Hash, TreeError> {
    assert!(start < end, "an empty range has no hash of its own");
    debug_assert!(
        start == 0 || start.trailing_zeros() >= 64 - (end - start - 1).leading_zeros(),
        "range [{start}, {end}) is not one RFC 6962 forms"
    );
    let mut parts: Vec<Hash> = subtree_hashes(store, start, end)?
        .into_iter()
        .map(|(_, hash)| hash)
        .collect();
    let mut hash = parts.pop().expect("a non-empty range has a part");
    while let Some(left) = parts.pop() {
        hash = node_hash(&left, &hash);
    }
    Ok(hash)
}

/// The maximal aligned subtrees `[start, end)` decomposes into, left to
/// right, as (level, index at that level): what a run of leaves appended
/// to a tree of `start` leaves contributes to its frontier. At most two per
/// level, so at most 2·log₂(end − start) of them.
pub fn aligned_subtrees(start: u64, end: u64) -> Vec<(u8, u64)> {
    let mut parts = Vec::new();
    let mut at = start;
    while at < end {
        let fits = 63 - (end - at).leading_zeros();
        let aligned = if at == 0 { 63 } else { at.trailing_zeros() };
        let level = fits.min(aligned) as u8;
        parts.push((level, at >> level));
        at += 1 << level;
    }
    parts
}

/// The hashes of [`aligned_subtrees`] of `[start, end)`, read from a store.
pub fn subtree_hashes(
    store: &impl NodeHashes,
    start: u64,
    end: u64,
) -> Result<Vec<(u8, Hash)>, TreeError> {
    aligned_subtrees(start, end)
        .into_iter()
        .map(|(level, index)| Ok((level, store.node(level, index)?)))
        .collect()
}

/// The root of the tree of the first `size` leaves.
pub fn root(store: &impl NodeHashes, size: u64) -> Result<Hash, TreeError> {
    if size == 0 {
        Ok(empty_root())
    } else {
        range_hash(store, 0, size)
    }
}

/// RFC 9162 §2.1.3.1: the audit path of leaf `index` in the tree of the first
/// `size` leaves, from the leaf's sibling up.
pub fn inclusion_proof(
    store: &impl NodeHashes,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError> {
    if index >= size {
        return Err(SizeError::LeafOutOfRange { index, size }.into());
    }
    let mut proof = Vec::new();
    // Descend from the whole tree to the leaf; siblings come out top first.
    let (mut m, mut start, mut n) = (index, 0u64, size);
    while n > 1 {
        let k = split(n);
        if m < k {
            proof.push(range_hash(store, start + k, start + n)?);
            n = k;
        } else {
            proof.push(range_hash(store, start, start + k)?);
            m -= k;
            start += k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.4.1: the proof that the tree of the first `old` leaves is a
/// prefix of the tree of the first `new` leaves. Empty when the sizes are
/// equal or `old` is 0 (every tree extends the empty one).
pub fn consistency_proof(
    store: &impl NodeHashes,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, TreeError> {
    if old > new {
        return Err(SizeError::BadSizes { old, new }.into());
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut proof = Vec::new();
    // SUBPROOF(m, D[start:start+n], whole), unrolled; hashes come out top
    // first.
    let (mut m, mut start, mut n, mut whole) = (old, 0u64, new, true);
    while m != n {
        let k = split(n);
        if m <= k {
            proof.push(range_hash(store, start + k, start + n)?);
            n = k;
        } else {
            proof.push(range_hash(store, start, start + k)?);
            m -= k;
            start += k;
            n -= k;
            whole = false;
        }
    }
    if !whole {
        proof.push(range_hash(store, start, start + n)?);
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.3.2: whether `proof` shows the leaf with hash `leaf` at
/// `index` in the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(SizeError::LeafOutOfRange { index, size }.into());
    }
    let mut r = *leaf;
    let fits = walk(index, size - 1, proof, |p, left| {
        r = if left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    });
    if !fits {
        return Err(ProofError::WrongLength(proof.len()));
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `old` leaves with
/// root `old_root` to be a prefix of the tree of `new` leaves with root
/// `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(SizeError::BadSizes { old, new }.into());
    }
    if old == new || old == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength(proof.len()));
        }
        return if (old == 0 && *old_root != empty_root()) || (old == new && old_root != new_root) {
            Err(ProofError::RootMismatch)
        } else {
            Ok(())
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength(0));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    // Past the lowest levels where the old tree's last leaf is a right child.
    let shift = (old - 1).trailing_ones();
    let (mut fr, mut sr) = (path[0], path[0]);
    let fits = walk(
        (old - 1) >> shift,
        (new - 1) >> shift,
        &path[1..],
        |c, left| {
            if left {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
            } else {
                sr = node_hash(&sr, c);
            }
        },
    );
    if !fits {
        return Err(ProofError::WrongLength(proof.len()));
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The walk RFC 9162's verifications share: `f` is the node's index and `s`
/// the last index at the current level; `combine` gets each proof hash and
/// whether it is a left sibling. Whether the proof had exactly the hashes the
/// sizes call for.
fn walk(mut f: u64, mut s: u64, path: &[Hash], mut combine: impl FnMut(&Hash, bool)) -> bool {
    for c in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            combine(c, true);
            // Up past the levels where this node has no right sibling.
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            combine(c, false);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0
}

/// What an appender keeps to extend the tree and compute its root without
/// reading the store: the roots of the perfect subtrees the leaves so far
/// form, one per set bit of the size, largest first (at most 64 hashes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

/// A node an append finished: to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedNode {
    pub level: u8,
    pub index: u64,
    pub hash: Hash,
}

/// A subtree that is not a node of the tree it would be appended to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a subtree of 2^{level} leaves does not start at a multiple of its width in a tree of {size} leaves"
)]
pub struct SubtreeError {
    pub size: u64,
    pub level: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontierError {
    #[error("a frontier is 8 bytes of size and 32 per peak; got {0} bytes")]
    Length(usize),
    #[error("a tree of size {size} has {expected} peaks, not {found}")]
    Peaks {
        size: u64,
        expected: u32,
        found: usize,
    },
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of the first `size` leaves, from a store.
    pub fn from_store(store: &impl NodeHashes, size: u64) -> Result<Self, TreeError> {
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if (size >> level) & 1 == 1 {
                peaks.push(store.node(level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(Self { size, peaks })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; returns the nodes it finished, the leaf first.
    pub fn append(&mut self, leaf: Hash) -> Vec<FinishedNode> {
        let index = self.size;
        let mut finished = vec![FinishedNode {
            level: 0,
            index,
            hash: leaf,
        }];
        let mut hash = leaf;
        let mut level = 0u8;
        // Each trailing one bit of the old size is a peak of equal height to
        // merge with.
        while (index >> level) & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per set bit");
            hash = node_hash(&left, &hash);
            level += 1;
            finished.push(FinishedNode {
                level,
                index: index >> level,
                hash,
            });
        }
        self.peaks.push(hash);
        self.size = self
            .size
            .checked_add(1)
            .expect("a tree holds fewer than 2^64 leaves");
        debug_assert_eq!(self.peaks.len(), self.size.count_ones() as usize);
        finished
    }

    /// Appends a whole perfect subtree of `2^level` leaves by its hash: the
    /// tree's size must be a multiple of its width (as [`aligned_subtrees`]
    /// gives them), or the subtree would not be a node of the tree.
    pub fn append_subtree(&mut self, level: u8, hash: Hash) -> Result<(), SubtreeError> {
        if level >= 63 || self.size & ((1u64 << level) - 1) != 0 {
            return Err(SubtreeError {
                size: self.size,
                level,
            });
        }
        let mut hash = hash;
        let mut level = level;
        while (self.size >> level) & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per set bit");
            hash = node_hash(&left, &hash);
            self.size -= 1 << level;
            level += 1;
        }
        self.peaks.push(hash);
        self.size = self.size.checked_add(1 << level).ok_or(SubtreeError {
            size: self.size,
            level,
        })?;
        debug_assert_eq!(self.peaks.len(), self.size.count_ones() as usize);
        Ok(())
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }

    /// `size` (8 bytes, big-endian) then the peaks, largest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.peaks.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for p in &self.peaks {
            out.extend_from_slice(p);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FrontierError> {
        if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(32) {
            return Err(FrontierError::Length(bytes.len()));
        }
        let size = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let peaks: Vec<Hash> = bytes[8..]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        if peaks.len() != size.count_ones() as usize {
            return Err(FrontierError::Peaks {
                size,
                expected: size.count_ones(),
                found: peaks.len(),
            });
        }
        Ok(Self { size, peaks })
    }
}

/// Every finished node in memory, level by level: for tests and for
/// checking a downloaded copy of a log.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    frontier: Frontier,
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn append(&mut self, leaf: Hash) {
        for n in self.frontier.append(leaf) {
            let level = n.level as usize;
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            debug_assert_eq!(self.levels[level].len() as u64, n.index);
            self.levels[level].push(n.hash);
        }
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

impl NodeHashes for MemoryTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash, TreeError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(TreeError::Missing { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of leaves given by its aligned subtrees' hashes grows a
    /// frontier to the same root as the leaves one by one, from any start
    /// to any end; a misaligned subtree is refused.
    #[test]
    fn subtrees_of_a_run_extend_a_frontier_like_its_leaves() {
        let mut tree = MemoryTree::new();
        for i in 0..70u64 {
            tree.append(leaf_hash(&i.to_be_bytes()));
        }
        for start in 0..40u64 {
            for end in start..=70u64 {
                let mut by_leaf = Frontier::from_store(&tree, start).unwrap();
                for i in start..end {
                    by_leaf.append(tree.node(0, i).unwrap());
                }
                let mut by_run = Frontier::from_store(&tree, start).unwrap();
                let parts = subtree_hashes(&tree, start, end).unwrap();
                let len = (end - start).max(1);
                assert!(parts.len() <= 2 * (64 - len.leading_zeros()) as usize);
                for (level, hash) in parts {
                    by_run.append_subtree(level, hash).unwrap();
                }
                assert_eq!((by_run.size(), by_run.root()), (end, by_leaf.root()));
                assert_eq!(by_run.root(), root(&tree, end).unwrap());
            }
        }
        let mut odd = Frontier::from_store(&tree, 3).unwrap();
        assert_eq!(
            odd.append_subtree(2, [0; 32]),
            Err(SubtreeError { size: 3, level: 2 })
        );
        assert_eq!(odd.size(), 3, "a refused subtree changes nothing");
    }

    /// The leaves of Certificate Transparency's reference tests.
    fn ct_leaves() -> Vec<Vec<u8>> {
        vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..0x58).collect(),
            (0x60..0x70).collect(),
        ]
    }

    /// Roots of the first 1..=8 CT leaves (pymerkle computes the same).
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// RFC 6962's definition, recursively, as the reference.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn tree_of(n: u64) -> (MemoryTree, Vec<Hash>) {
        let mut tree = MemoryTree::new();
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for l in &leaves {
            tree.append(*l);
        }
        (tree, leaves)
    }

    #[test]
    fn roots_match_certificate_transparency() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut tree = MemoryTree::new();
        for (i, entry) in ct_leaves().iter().enumerate() {
            tree.append(leaf_hash(entry));
            assert_eq!(hex::encode(tree.root()), CT_ROOTS[i], "size {}", i + 1);
            assert_eq!(hex::encode(root(&tree, i as u64 + 1).unwrap()), CT_ROOTS[i]);
        }
    }

    #[test]
    fn every_prefix_root_agrees_with_the_recursive_definition() {
        let (tree, leaves) = tree_of(300);
        for size in 0..=300u64 {
            assert_eq!(
                root(&tree, size).unwrap(),
                mth(&leaves[..size as usize]),
                "{size}"
            );
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_any_change_fails() {
        let (tree, leaves) = tree_of(70);
        for size in 1..=70u64 {
            let r = root(&tree, size).unwrap();
            for index in 0..size {
                let proof = inclusion_proof(&tree, index, size).unwrap();
                let leaf = &leaves[index as usize];
                verify_inclusion(index, size, leaf, &proof, &r).unwrap();
                // Another leaf, another index, a changed hash, a missing or an
                // extra hash, another size: refused.
                let other = leaf_hash(b"not in the tree");
                assert!(verify_inclusion(index, size, &other, &proof, &r).is_err());
                if size > 1 {
                    let wrong = (index + 1) % size;
                    assert!(verify_inclusion(wrong, size, leaf, &proof, &r).is_err());
                    let mut bent = proof.clone();
                    bent[0][0] ^= 1;
                    assert!(verify_inclusion(index, size, leaf, &bent, &r).is_err());
                    assert!(verify_inclusion(index, size, leaf, &proof[1..], &r).is_err());
                }
                let mut longer = proof.clone();
                longer.push(other);
                assert!(verify_inclusion(index, size, leaf, &longer, &r).is_err());
                // A proof is for one tree: not for the next one's root.
                if size < 70 {
                    let next = root(&tree, size + 1).unwrap();
                    assert!(verify_inclusion(index, size + 1, leaf, &proof, &next).is_err());
                }
            }
        }
        assert_eq!(
            inclusion_proof(&tree, 70, 70),
            Err(TreeError::Sizes(SizeError::LeafOutOfRange {
                index: 70,
                size: 70
            }))
        );
    }

    #[test]
    fn consistency_proofs_verify_and_any_change_fails() {
        let (tree, _) = tree_of(40);
        for new in 0..=40u64 {
            let new_root = root(&tree, new).unwrap();
            for old in 0..=new {
                let old_root = root(&tree, old).unwrap();
                let proof = consistency_proof(&tree, old, new).unwrap();
                verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
                let forged = leaf_hash(b"fork");
                assert!(verify_consistency(old, new, &forged, &new_root, &proof).is_err());
                // Every tree extends the empty one: there is nothing to check then.
                if old > 0 {
                    assert!(verify_consistency(old, new, &old_root, &forged, &proof).is_err());
                }
                if !proof.is_empty() {
                    let mut bent = proof.clone();
                    let last = bent.len() - 1;
                    bent[last][31] ^= 1;
                    assert!(verify_consistency(old, new, &old_root, &new_root, &bent).is_err());
                    assert!(
                        verify_consistency(old, new, &old_root, &new_root, &proof[1..]).is_err()
                    );
                }
                if old > 0 && new < 40 {
                    // A proof is for one pair of trees: not for the next tree.
                    let next = root(&tree, new + 1).unwrap();
                    assert!(verify_consistency(old, new + 1, &old_root, &next, &proof).is_err());
                }
            }
        }
        assert_eq!(
            consistency_proof(&tree, 5, 4),
            Err(TreeError::Sizes(SizeError::BadSizes { old: 5, new: 4 }))
        );
    }

    #[test]
    fn proofs_have_at_most_one_hash_per_level() {
        let (tree, _) = tree_of(1000);
        assert_eq!(inclusion_proof(&tree, 0, 1000).unwrap().len(), 10);
        assert_eq!(inclusion_proof(&tree, 999, 1000).unwrap().len(), 8);
        assert!(consistency_proof(&tree, 777, 1000).unwrap().len() <= 2 * 10);
    }

    #[test]
    fn a_frontier_round_trips_and_rebuilds_from_the_store() {
        let (tree, _) = tree_of(77);
        let frontier = Frontier::from_store(&tree, 77).unwrap();
        assert_eq!(frontier.root(), tree.root());
        assert_eq!(
            Frontier::from_bytes(&frontier.to_bytes()).unwrap(),
            frontier
        );
        // A prefix rebuilt from the store appends on to the same root.
        let mut prefix = Frontier::from_store(&tree, 50).unwrap();
        for i in 50..77u64 {
            prefix.append(leaf_hash(&i.to_be_bytes()));
        }
        assert_eq!(prefix, frontier);
        let mut bytes = frontier.to_bytes();
        bytes.truncate(bytes.len() - 32);
        assert_eq!(
            Frontier::from_bytes(&bytes),
            Err(FrontierError::Peaks {
                size: 77,
                expected: 4,
                found: 3
            })
        );
        assert_eq!(Frontier::from_bytes(&[0; 7]), Err(FrontierError::Length(7)));
        assert!(matches!(
            Frontier::from_store(&tree, 78),
            Err(TreeError::Missing { .. })
        ));
    }
}
