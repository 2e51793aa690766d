//! The tree as a store keeps it: finished tiles (256 hashes of tree level
//! 8·L, written once, 8 KiB each: one write per 256 events at level 0, one
//! per 65,536 at level 1) and, in memory, the hashes of the unfinished tile
//! of each level and the frontier. Any finished node is read from them:
//! node (h, i) is the root of 2^(h mod 8) consecutive hashes of level
//! 8·⌊h/8⌋, which lie in one tile.

use crate::merkle::{Frontier, Hash, NodeHashes, TreeError, node_hash};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH};

const WIDTH: usize = TILE_WIDTH as usize;

/// A tile an append finished: to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedTile {
    /// The tile level L (its hashes are of tree level 8·L).
    pub level: u8,
    pub index: u64,
    pub hashes: Vec<Hash>,
}

impl FinishedTile {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.concat()
    }
}

/// Reads finished tiles from a store.
pub trait TileStore {
    /// The 256 hashes of finished tile `index` of tile level `level`.
    fn full_tile(&self, level: u8, index: u64) -> Option<Vec<Hash>>;
}

/// The tree over the leaves appended so far, as stored tiles plus what is
/// kept in memory (at most 256 hashes per level, and the frontier).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TiledTree {
    frontier: Frontier,
    /// Per tile level, the hashes of its unfinished tile.
    partial: Vec<Vec<Hash>>,
}

/// The hashes of a tile's bytes (a multiple of 32 bytes).
pub fn tile_hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect(),
    )
}

/// The root of a perfect subtree over `hashes` (a power of two of them).
fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
    }
    level[0]
}

impl TiledTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends a leaf; returns the tiles it finished (lowest level first).
    pub fn append(&mut self, leaf: Hash) -> Vec<FinishedTile> {
        let mut finished = Vec::new();
        for n in self.frontier.append(leaf) {
            if n.level % TILE_HEIGHT != 0 {
                continue;
            }
            let level = n.level / TILE_HEIGHT;
            if self.partial.len() <= usize::from(level) {
                self.partial.push(Vec::with_capacity(WIDTH));
            }
            let hashes = &mut self.partial[usize::from(level)];
            hashes.push(n.hash);
            if hashes.len() == WIDTH {
                finished.push(FinishedTile {
                    level,
                    index: n.index / WIDTH as u64,
                    hashes: std::mem::replace(hashes, Vec::with_capacity(WIDTH)),
                });
            }
        }
        finished
    }

    /// The tree of `size` leaves from its stored tiles and, for the last
    /// unfinished level-0 tile, the leaf hashes `leaf(i)` gives.
    pub fn restore(
        size: u64,
        tiles: &impl TileStore,
        mut leaf: impl FnMut(u64) -> Result<Hash, TreeError>,
    ) -> Result<TiledTree, TreeError> {
        let mut partial = Vec::new();
        for level in 0..8u8 {
            let nodes = size >> (u32::from(level) * u32::from(TILE_HEIGHT));
            if nodes == 0 {
                break;
            }
            let first = nodes - nodes % WIDTH as u64;
            let hashes = (first..nodes)
                .map(|i| {
                    if level == 0 {
                        leaf(i)
                    } else {
                        // The root of finished tile i one level down.
                        tiles
                            .full_tile(level - 1, i)
                            .filter(|h| h.len() == WIDTH)
                            .map(|h| perfect_root(&h))
                            .ok_or(TreeError::Missing {
                                level: (level - 1) * TILE_HEIGHT,
                                index: i * WIDTH as u64,
                            })
                    }
                })
                .collect::<Result<Vec<Hash>, _>>()?;
            partial.push(hashes);
        }
        let mut tree = TiledTree {
            frontier: Frontier::default(),
            partial,
        };
        let nodes = TiledNodes {
            tree: &tree,
            tiles,
            size,
        };
        let frontier = Frontier::from_store(&nodes, size)?;
        tree.frontier = frontier;
        Ok(tree)
    }

    /// The finished nodes, read from `tiles` and what is kept here.
    pub fn nodes<'a, S: TileStore>(&'a self, tiles: &'a S) -> TiledNodes<'a, S> {
        TiledNodes {
            tree: self,
            tiles,
            size: self.size(),
        }
    }
}

/// Finished nodes of a `TiledTree` of `size` leaves over its store.
pub struct TiledNodes<'a, S> {
    tree: &'a TiledTree,
    tiles: &'a S,
    size: u64,
}

impl<S: TileStore> TiledNodes<'_, S> {
    /// The hashes of tile `index` at tile level `level`, as far as the tree
    /// has them (a full tile from the store, the unfinished one from memory).
    pub fn tile(&self, level: u8, index: u64) -> Option<Vec<Hash>> {
        let nodes = self
            .size
            .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
            .unwrap_or(0);
        let full = nodes / WIDTH as u64;
        if index < full {
            self.tiles
                .full_tile(level, index)
                .filter(|h| h.len() == WIDTH)
        } else if index == full && !nodes.is_multiple_of(WIDTH as u64) {
            self.tree.partial.get(usize::from(level)).cloned()
        } else {
            None
        }
    }
}

impl<S: TileStore> NodeHashes for TiledNodes<'_, S> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, TreeError> {
        let missing = TreeError::Missing { level, index };
        let tile_level = level / TILE_HEIGHT;
        let span = 1usize << (level % TILE_HEIGHT);
        let first = index
            .checked_shl(u32::from(level % TILE_HEIGHT))
            .ok_or(missing.clone())?;
        let hashes = self
            .tile(tile_level, first / WIDTH as u64)
            .ok_or(missing.clone())?;
        let offset = (first % WIDTH as u64) as usize;
        let under = hashes.get(offset..offset + span).ok_or(missing)?;
        Ok(perfect_root(under))
    }
}

/// Tiles finished since the store was last written, over the store: what a
/// state machine reads while the tiles of the batch it applies are not
/// written yet.
pub struct PendingTiles<'a, S> {
    pub stored: &'a S,
    pub pending: &'a std::collections::HashMap<(u8, u64), Vec<Hash>>,
}

impl<S: TileStore> TileStore for PendingTiles<'_, S> {
    fn full_tile(&self, level: u8, index: u64) -> Option<Vec<Hash>> {
        match self.pending.get(&(level, index)) {
            Some(h) => Some(h.clone()),
            None => self.stored.full_tile(level, index),
        }
    }
}

/// A `TiledTree` over its store as the kernel's `LogTree`: what a
/// checkpoint is checked against.
pub struct TreeView<'a, S> {
    pub tree: &'a TiledTree,
    pub tiles: &'a S,
}

impl<S: TileStore> ics_kernel::LogTree for TreeView<'_, S> {
    fn size(&self) -> u64 {
        self.tree.size()
    }

    fn root(&self, size: u64) -> Option<Hash> {
        if size > self.tree.size() {
            return None;
        }
        crate::merkle::root(&self.tree.nodes(self.tiles), size).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryTree, consistency_proof, inclusion_proof, leaf_hash, root};
    use std::collections::HashMap;

    #[derive(Default)]
    struct Store(HashMap<(u8, u64), Vec<Hash>>);

    impl TileStore for Store {
        fn full_tile(&self, level: u8, index: u64) -> Option<Vec<Hash>> {
            self.0.get(&(level, index)).cloned()
        }
    }

    fn leaf(i: u64) -> Hash {
        leaf_hash(&i.to_be_bytes())
    }

    fn grow(n: u64) -> (TiledTree, Store, MemoryTree) {
        let (mut tree, mut store, mut reference) =
            (TiledTree::new(), Store::default(), MemoryTree::new());
        for i in 0..n {
            for t in tree.append(leaf(i)) {
                assert_eq!(t.hashes.len(), 256);
                assert!(store.0.insert((t.level, t.index), t.hashes).is_none());
            }
            reference.append(leaf(i));
        }
        (tree, store, reference)
    }

    #[test]
    fn tiles_give_every_node_root_and_proof_of_the_plain_tree() {
        // Past a full level-1 tile: 65,536 leaves make level-1 tile 0.
        let n = 256 * 256 + 256 * 3 + 17;
        let (tree, store, reference) = grow(n);
        assert_eq!(store.0.len(), 256 + 3 + 1);
        assert_eq!(tree.root(), reference.root());
        let nodes = tree.nodes(&store);
        for size in [1, 255, 256, 257, 65_535, 65_536, n - 1, n] {
            assert_eq!(
                root(&nodes, size).unwrap(),
                root(&reference, size).unwrap(),
                "{size}"
            );
        }
        for (index, size) in [(0, n), (n - 1, n), (65_535, 65_537), (300, 66_000)] {
            assert_eq!(
                inclusion_proof(&nodes, index, size).unwrap(),
                inclusion_proof(&reference, index, size).unwrap()
            );
        }
        for (old, new) in [(1, n), (256, 65_536), (65_535, n), (12_345, 66_000)] {
            assert_eq!(
                consistency_proof(&nodes, old, new).unwrap(),
                consistency_proof(&reference, old, new).unwrap()
            );
        }
        // Tiles as served: a full one from the store, the partial from memory.
        assert_eq!(nodes.tile(0, 0).unwrap().len(), 256);
        assert_eq!(nodes.tile(0, 259).unwrap().len(), 17);
        assert_eq!(nodes.tile(1, 1).unwrap().len(), 3);
        assert_eq!(nodes.tile(2, 0).unwrap().len(), 1);
        assert_eq!(nodes.tile(0, 260), None);
    }

    #[test]
    fn a_restored_tree_is_the_same_and_grows_the_same() {
        let n = 256 * 256 + 1000;
        let (tree, store, _) = grow(n);
        let restored = TiledTree::restore(n, &store, |i| Ok(leaf(i))).unwrap();
        assert_eq!(restored, tree);
        let (mut a, mut b) = (tree, restored);
        for i in n..n + 300 {
            assert_eq!(a.append(leaf(i)), b.append(leaf(i)));
        }
        assert_eq!(a.root(), b.root());
        // A store that lost a tile the restore reads (a child of the
        // unfinished level-1 tile) is refused; others fail when read.
        let mut lost = store;
        lost.0.remove(&(0, 257));
        assert!(TiledTree::restore(n, &lost, |i| Ok(leaf(i))).is_err());
    }
}
