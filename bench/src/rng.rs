//! A small seeded random number generator (SplitMix64).
//!
//! The load generator needs reproducible choices for a given `--seed` and nothing
//! cryptographic, so a dozen lines beat a dependency. SplitMix64 passes BigCrush and every
//! worker gets its own stream through [`Rng::fork`].

/// SplitMix64: a 64-bit state advanced by a constant and finalised by a mixing function.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent stream for worker `stream`, reproducible from this generator's seed.
    pub fn fork(&self, stream: u64) -> Rng {
        let mut mixer = Rng::new(self.state ^ mix(stream.wrapping_add(0x5851_F42D_4C95_7F2D)));
        Rng::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A value in `0..bound`; `bound` must be positive. Multiply-shift: the bias is below
    /// 2^-32 for every bound this crate uses.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below needs a positive bound");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A value in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "Rng::between needs low <= high");
        low + self.below(high - low + 1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_forks_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|pair| pair[0] == pair[1]));
        let mut one = Rng::new(7).fork(1);
        let mut two = Rng::new(7).fork(2);
        assert_ne!(one.next_u64(), two.next_u64());
        assert_eq!(
            Rng::new(7).fork(1).next_u64(),
            Rng::new(7).fork(1).next_u64()
        );
    }

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut rng = Rng::new(1);
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            seen[rng.below(5) as usize] += 1;
            let value = rng.between(3, 4);
            assert!((3..=4).contains(&value));
        }
        assert!(seen.iter().all(|&count| count > 800), "{seen:?}");
    }
}
