//! SplitMix64: a small, fast generator whose every sequence follows from its seed, for the
//! engine's randomness in simulations and benchmarks (branches and tags of the usual length,
//! reproducible runs).

use crate::engine::binding::Entropy;

/// SplitMix64 (Steele, Lea and Flood), seeded by its field.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl Entropy for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
