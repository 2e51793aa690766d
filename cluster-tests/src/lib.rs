//! Chaos tests of `icsd` clusters in real Docker containers.
//!
//! - [`image`]: builds the `FROM scratch` image once per test process with `deploy/build-image.sh`.
//! - [`docker`]: a cluster of containers on a private Docker network, and the faults: SIGKILL,
//!   pause, network disconnect, restart with the same volume, membership change.
//! - [`workload`]: writers that record every acknowledged append, and readers that check
//!   linearizable reads against the writes acknowledged before they began.
//! - [`checker`]: after healing, every acknowledged event on every replica, in one order, with
//!   one projection state, and every subject's chain verifying.
//! - [`schedule`]: the seeded fault schedule.

pub mod checker;
pub mod docker;
pub mod image;
pub mod schedule;
pub mod workload;

/// A small seeded generator (splitmix64): the schedule replays from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
