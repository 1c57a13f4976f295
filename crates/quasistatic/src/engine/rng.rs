//! Per-trajectory random streams.
//!
//! Trajectory `j` of a run with seed `s` draws from a xoshiro256++ generator whose 256-bit
//! state is four SplitMix64 outputs keyed by `(s, j)`. A trajectory's numbers therefore depend
//! only on `(seed, j)`, never on which thread runs it or in which order: an ensemble gives
//! bit-identical results for any number of threads.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The generator used for every random stream.
pub type TrajectoryRng = Xoshiro256PlusPlus;

/// SplitMix64 step (Steele, Lea & Flood 2014): a bijective mixer used to derive seeds.
#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Purpose of the stream a trajectory's gradient noise (labels, batches, Gaussian noise) is
/// drawn from.
pub const GRADIENT_NOISE: u64 = 0;
/// Purpose of the stream of a trajectory's independent start perturbation.
pub const START_NOISE: u64 = 1;
/// Purpose of the stream of a derived (SDE) trajectory's increments.
pub const SDE_INCREMENTS: u64 = 2;
/// Purpose of the stream of a trajectory's start drawn from a covariance factor.
pub const START_FACTOR: u64 = 3;

/// The stream for trajectory `trajectory` of a run seeded with `seed`. `purpose` separates
/// independent uses ([`GRADIENT_NOISE`], [`START_NOISE`], [`SDE_INCREMENTS`],
/// [`START_FACTOR`]).
pub fn stream(seed: u64, trajectory: u64, purpose: u64) -> TrajectoryRng {
    let mut bytes = [0u8; 32];
    for (chunk, w) in bytes
        .chunks_exact_mut(8)
        .zip(stream_state(seed, trajectory, purpose))
    {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    TrajectoryRng::from_seed(bytes)
}

/// The four xoshiro256++ state words `s[0..4]` that [`stream`]`(seed, trajectory, purpose)`
/// starts from (its seed bytes read as little-endian words, as `from_seed` does; four
/// SplitMix64 outputs are never all zero in practice, and a zero state is rejected by the
/// test below). For generators stepped on state words: [`xoshiro256pp_next`], [`StateRng`].
pub fn stream_state(seed: u64, trajectory: u64, purpose: u64) -> [u64; 4] {
    let mut s = seed;
    let a = splitmix64(&mut s);
    let mut t = a ^ trajectory.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let b = splitmix64(&mut t);
    let mut u = b ^ purpose.wrapping_mul(0xA076_1D64_78BD_642F);
    std::array::from_fn(|_| splitmix64(&mut u))
}

/// One xoshiro256++ step on the state words `s` (Blackman & Vigna 2018): returns the next
/// `u64` and advances `s`, exactly as [`TrajectoryRng`]'s `next_u64` does on its private
/// state (tested). Written out because the vectorised label-noise draws
/// (`noise::LaneStreams`) step eight generators held as state words, which `rand_xoshiro`
/// does not expose; its lane-wise AVX-512 form is the same operations.
#[inline(always)]
pub fn xoshiro256pp_next(s: &mut [u64; 4]) -> u64 {
    let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
    let t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3].rotate_left(45);
    result
}

/// A [`TrajectoryRng`] stepped on borrowed state words: the same numbers for every `RngCore`
/// call (`next_u32` is the high half of `next_u64`, bytes are filled from `next_u64`, as in
/// `rand_xoshiro`), so `rand_distr`'s samplers draw from it exactly what they draw from a
/// `TrajectoryRng` in that state (tested).
pub struct StateRng<'a>(pub &'a mut [u64; 4]);

impl rand::RngCore for StateRng<'_> {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        xoshiro256pp_next(self.0)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand::rand_core::impls::fill_bytes_via_next(self, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, 3, 0), |r, _: u64| Some(r.random()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, 3, 0), |r, _: u64| Some(r.random()))
            .collect();
        assert_eq!(a, b);
        let mut firsts: Vec<u64> = (0..1000).map(|j| stream(7, j, 0).random()).collect();
        firsts.extend((0..1000).map(|j| stream(8, j, 0).random::<u64>()));
        firsts.extend((0..1000).map(|j| stream(7, j, 1).random::<u64>()));
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(firsts.len(), 3000, "streams collide");
    }

    /// The state words and the hand-written step give `rand_xoshiro`'s streams: `next_u64`,
    /// `next_u32`, bytes and `StandardNormal` draws (slow paths included), bit for bit, and
    /// the same generator afterwards.
    #[test]
    fn state_words_step_like_the_generator() {
        use rand::RngCore;
        use rand_distr::StandardNormal;
        for j in 0..50u64 {
            let mut words = stream_state(11, j, j % 3);
            assert_ne!(words, [0; 4]);
            let mut reference = stream(11, j, j % 3);
            let mut own = StateRng(&mut words);
            for k in 0..2000 {
                match k % 4 {
                    0 => assert_eq!(own.next_u64(), reference.next_u64()),
                    1 => assert_eq!(own.next_u32(), reference.next_u32()),
                    2 => {
                        let (mut a, mut b) = ([0u8; 13], [0u8; 13]);
                        own.fill_bytes(&mut a);
                        reference.fill_bytes(&mut b);
                        assert_eq!(a, b);
                    }
                    _ => {
                        let (a, b): (f64, f64) =
                            (own.sample(StandardNormal), reference.sample(StandardNormal));
                        assert_eq!(a.to_bits(), b.to_bits());
                    }
                }
            }
            assert_eq!(own.next_u64(), reference.next_u64());
        }
    }
}
