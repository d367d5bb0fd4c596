//! The one source of randomness in the core: a small seeded PRNG.
//!
//! The caller passes the seed in [`crate::Config::seed`]; the production binary draws it from the
//! OS and logs it, the simulator derives it from the run's seed. Same seed, same choices.
//! The generator is SplitMix64: tiny, fast and good enough for tie-breaking and ids. It is not
//! for cryptography.

#[derive(Clone, Debug)]
pub struct Prng {
    state: u64,
}

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// True with probability `num/den`.
    pub fn ratio(&mut self, num: u64, den: u64) -> bool {
        assert!(den > 0 && num <= den);
        self.below(den) < num
    }

    /// A random 16-byte id (used for Kafka's cluster id and topic ids).
    pub fn uuid_bytes(&mut self) -> [u8; 16] {
        let a = self.next_u64().to_be_bytes();
        let b = self.next_u64().to_be_bytes();
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a);
        out[8..].copy_from_slice(&b);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn same_seed_same_stream() {
        let mut a = Prng::new(7);
        let mut b = Prng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Prng::new(1).next_u64(), Prng::new(2).next_u64());
    }
}
