//! C2SP tlog-tiles coordinates: a tile at level L holds up to 256 hashes of
//! the tree's level 8·L; entry bundles hold the leaves' entries. Paths are
//! `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, N in zero-padded
//! 3-digit elements, all but the last prefixed with `x` (1234067 →
//! `x001/x234/067`), `.p/<W>` only on a partial tile (1 ≤ W < 256).

use crate::merkle::{Hash, NodeHashes, TreeError};

/// Tree levels a tile spans.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;
/// The highest tile level the path grammar accepts.
pub const MAX_TILE_LEVEL: u8 = 63;
/// An entry in a bundle is at most this long (its length is a `uint16`).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKind {
    /// Hashes of tree level `8 · level`.
    Hashes { level: u8 },
    /// Entries of the leaves.
    Entries,
}

/// A tile: `width` items starting at item `index · 256` of its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub kind: TileKind,
    pub index: u64,
    pub width: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilePathError {
    #[error("not a tile path: {0}")]
    Malformed(String),
}

impl Tile {
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The path under the log's prefix.
    pub fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut path = format!("tile/{level}/{}", encode_index(self.index));
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Parses `tile/...` (the log's prefix already removed).
    pub fn parse(path: &str) -> Result<Tile, TilePathError> {
        let malformed = || TilePathError::Malformed(path.chars().take(200).collect());
        let rest = path.strip_prefix("tile/").ok_or_else(malformed)?;
        let (level, rest) = rest.split_once('/').ok_or_else(malformed)?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            // Decimal without leading zeros, as the writer prints it.
            if level.is_empty()
                || level.len() > 2
                || !level.bytes().all(|b| b.is_ascii_digit())
                || (level.len() > 1 && level.starts_with('0'))
            {
                return Err(malformed());
            }
            let level: u8 = level.parse().map_err(|_| malformed())?;
            if level > MAX_TILE_LEVEL {
                return Err(malformed());
            }
            TileKind::Hashes { level }
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                if width.is_empty()
                    || width.len() > 3
                    || !width.bytes().all(|b| b.is_ascii_digit())
                    || width.starts_with('0')
                {
                    return Err(malformed());
                }
                let width: u16 = width.parse().map_err(|_| malformed())?;
                if width >= TILE_WIDTH {
                    return Err(malformed());
                }
                (index, width)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = decode_index(index).ok_or_else(malformed)?;
        Ok(Tile { kind, index, width })
    }

    /// The tile of `kind` holding item `index · 256` in a tree of `size`
    /// leaves: full, partial, or not there yet (`None`).
    pub fn in_tree(kind: TileKind, index: u64, size: u64) -> Option<Tile> {
        let items = match kind {
            TileKind::Hashes { level } => {
                let height = u32::from(level) * u32::from(TILE_HEIGHT);
                if height >= 64 { 0 } else { size >> height }
            }
            TileKind::Entries => size,
        };
        let start = index.checked_mul(u64::from(TILE_WIDTH))?;
        if start >= items {
            return None;
        }
        let width = (items - start).min(u64::from(TILE_WIDTH)) as u16;
        Some(Tile { kind, index, width })
    }
}

/// Zero-padded 3-digit elements, all but the last prefixed with `x`.
pub fn encode_index(mut index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    index /= 1000;
    while index > 0 {
        groups.push(format!("x{:03}", index % 1000));
        index /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn decode_index(path: &str) -> Option<u64> {
    let elements: Vec<&str> = path.split('/').collect();
    let (last, leading) = elements.split_last()?;
    let mut index: u64 = 0;
    for (i, element) in leading.iter().enumerate() {
        let digits = element.strip_prefix('x')?;
        // No leading zero groups: the writer never prints `x000/…` first.
        if i == 0 && digits == "000" {
            return None;
        }
        index = index
            .checked_mul(1000)?
            .checked_add(three_digits(digits)?)?;
    }
    index.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(s: &str) -> Option<u64> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The bytes of a hash tile: its hashes, concatenated.
pub fn hash_tile(store: &impl NodeHashes, tile: &Tile) -> Result<Vec<u8>, TreeError> {
    let TileKind::Hashes { level } = tile.kind else {
        panic!("an entry bundle is not read from the tree");
    };
    let tree_level = level * TILE_HEIGHT;
    let first = tile.index * u64::from(TILE_WIDTH);
    let mut out = Vec::with_capacity(32 * usize::from(tile.width));
    for i in 0..u64::from(tile.width) {
        let hash: Hash = store.node(tree_level, first + i)?;
        out.extend_from_slice(&hash);
    }
    Ok(out)
}

/// An entry bundle: each entry as a big-endian `uint16` length and its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).expect("entries are at most MAX_ENTRY_BYTES");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryTree, leaf_hash};

    #[test]
    fn paths_follow_the_spec_examples() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(67), "067");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(1000), "x001/000");
        let tile = Tile {
            kind: TileKind::Hashes { level: 0 },
            index: 1234067,
            width: 256,
        };
        assert_eq!(tile.path(), "tile/0/x001/x234/067");
        let partial = Tile {
            kind: TileKind::Entries,
            index: 3,
            width: 17,
        };
        assert_eq!(partial.path(), "tile/entries/003.p/17");
        for t in [tile, partial] {
            assert_eq!(Tile::parse(&t.path()).unwrap(), t);
        }
        assert_eq!(
            Tile::parse("tile/2/x001/000.p/255").unwrap(),
            Tile {
                kind: TileKind::Hashes { level: 2 },
                index: 1000,
                width: 255
            }
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "",
            "tile",
            "tile/0",
            "tile/0/",
            "tile/0/1",
            "tile/0/0001",
            "tile/0/x001",
            "tile/0/001/002",
            "tile/0/x000/001",
            "tile/0/y001/002",
            "tile/00/001",
            "tile/64/001",
            "tile/-1/001",
            "tile/0/001.p/256",
            "tile/0/001.p/0",
            "tile/0/001.p/017",
            "tile/0/001.p/",
            "tile/0/001.p/1/2",
            "tile/data/001",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tiles/0/001",
            "tile/entries/001.p/300",
        ] {
            assert!(Tile::parse(bad).is_err(), "{bad:?} was accepted");
        }
        // The largest index parses; one more overflows.
        assert_eq!(
            Tile::parse("tile/0/x018/x446/x744/x073/x709/x551/615")
                .unwrap()
                .index,
            u64::MAX
        );
    }

    #[test]
    fn tiles_of_a_tree_are_full_partial_or_absent() {
        let size = 256 * 256 + 300;
        let at = |kind, index| Tile::in_tree(kind, index, size).map(|t| t.width);
        let level0 = TileKind::Hashes { level: 0 };
        let level1 = TileKind::Hashes { level: 1 };
        assert_eq!(at(level0, 0), Some(256));
        assert_eq!(at(level0, 256), Some(256));
        assert_eq!(at(level0, 257), Some(44));
        assert_eq!(at(level0, 258), None);
        assert_eq!(at(TileKind::Entries, 257), Some(44));
        // Level 1 holds the roots of the 257 full 256-leaf subtrees.
        assert_eq!(at(level1, 0), Some(256));
        assert_eq!(at(level1, 1), Some(1));
        assert_eq!(at(TileKind::Hashes { level: 2 }, 0), Some(1));
        assert_eq!(at(TileKind::Hashes { level: 9 }, 0), None);
        assert_eq!(Tile::in_tree(level0, u64::MAX, u64::MAX), None);
    }

    #[test]
    fn a_hash_tile_is_its_level_of_the_tree() {
        let mut tree = MemoryTree::new();
        for i in 0..600u64 {
            tree.append(leaf_hash(&i.to_be_bytes()));
        }
        let tile = Tile::in_tree(TileKind::Hashes { level: 0 }, 2, 600).unwrap();
        let bytes = hash_tile(&tree, &tile).unwrap();
        assert_eq!(bytes.len(), 88 * 32);
        assert_eq!(&bytes[..32], &leaf_hash(&512u64.to_be_bytes()));
        let tile = Tile::in_tree(TileKind::Hashes { level: 1 }, 0, 600).unwrap();
        assert_eq!(tile.width, 2);
        let bytes = hash_tile(&tree, &tile).unwrap();
        assert_eq!(
            &bytes[32..],
            &crate::merkle::range_hash(&tree, 256, 512).unwrap()
        );
    }

    #[test]
    fn an_entry_bundle_prefixes_lengths() {
        let bundle = entry_bundle([b"ab".as_slice(), b"".as_slice(), b"xyz".as_slice()]);
        assert_eq!(bundle, b"\x00\x02ab\x00\x00\x00\x03xyz");
    }
}
