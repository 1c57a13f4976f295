//! The label-noise draws of a group's eight trajectories at once, as AVX-512 code.
//!
//! [`LaneStreams`] holds the xoshiro256++ generators of the [`LANES`] trajectories of a group
//! as state words in structure-of-arrays form (word `w` of lane `l` at `s[w][l]`), so that one
//! step of all eight generators is a dozen vector instructions, and runs the fast path of
//! `rand_distr`'s ziggurat ([`standard_normal_inline`](super::normal::standard_normal_inline)) on
//! all lanes at once: the table look-ups are two gathers, the acceptance test one compare into
//! a mask. A lane that fails the fast test (about 1.2% of draws) keeps its generator untouched
//! and is redrawn by [`LaneStreams::redraw`] with `rand_distr` itself, from the same state, so
//! it draws the same first number, fails the same test and goes on as always: every lane's
//! numbers are its [`StandardNormal`] stream, bit for bit (tested).
//!
//! Why: the register group step (`engine::registers`) spends most of its instructions on
//! these draws when they are scalar (about 30 instructions each, 32-64 per step); the vector
//! draw takes about 30 for eight lanes, so the out-of-order window holds much more of the
//! divider-bound arithmetic it overlaps (`bench/PROFILE.md`).

use rand::Rng;
use rand_distr::StandardNormal;

use super::lanes::{Lanes, LANES};
use super::normal::ZigguratTable;
use super::rng::{stream_state, StateRng};

/// The generators of a group's [`LANES`] trajectories as xoshiro256++ state words, word `w` of
/// lane `l` at `s[w][l]` (one 64-byte vector per word).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct LaneStreams {
    s: [[u64; LANES]; 4],
}

impl LaneStreams {
    /// The streams [`crate::engine::rng::stream`]`(seed, first + l, purpose)` of lanes `l = 0..LANES`.
    pub fn new(seed: u64, first: u64, purpose: u64) -> Self {
        let states: [[u64; 4]; LANES] =
            std::array::from_fn(|l| stream_state(seed, first + l as u64, purpose));
        LaneStreams {
            s: std::array::from_fn(|w| std::array::from_fn(|l| states[l][w])),
        }
    }

    /// Lane `l`'s state words.
    fn lane(&self, l: usize) -> [u64; 4] {
        std::array::from_fn(|w| self.s[w][l])
    }

    /// The next standard normal of every lane, times `sigma`, into `shift`, by the fast path
    /// alone: lanes that pass the ziggurat's fast test get `sigma * z` and their generator
    /// advanced; the others (returned as a bit mask, lane `l` at bit `l`) keep their generator
    /// as it was and a meaningless value in `shift`, to be replaced by [`LaneStreams::redraw`]
    /// before the lane draws again.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn draw_fast_avx512(
        &mut self,
        table: &ZigguratTable,
        sigma: f64,
        shift: &mut Lanes,
    ) -> u8 {
        use std::arch::x86_64::*;
        let p = self.s.as_mut_ptr() as *mut __m512i;
        let x_tab = table.abscissae().as_ptr();
        // SAFETY (whole block): `p` points at four aligned 64-byte words of `self`; the gather
        // indices are `r & 0xff <= 255` and `X` has 257 entries, so `X[i]` and `X[i + 1]` are
        // in bounds; `shift` is eight `f64`.
        unsafe {
            let [s0, s1, s2, s3] = [0, 1, 2, 3].map(|w| _mm512_load_si512(p.add(w)));
            // xoshiro256++ (crate::engine::rng::xoshiro256pp_next), lane-wise.
            let r = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s0, s3)), s0);
            let t = _mm512_slli_epi64::<17>(s1);
            let a2 = _mm512_xor_si512(s2, s0);
            let a3 = _mm512_xor_si512(s3, s1);
            let next = [
                _mm512_xor_si512(s0, a3),
                _mm512_xor_si512(s1, a2),
                _mm512_xor_si512(a2, t),
                _mm512_rol_epi64::<45>(a3),
            ];
            // The fast test of `standard_normal_inline`: `i` = low 8 bits, `u` in [-1, 1) from
            // the high 52, `x = u X[i]`, accepted when `|x| < X[i + 1]`.
            let i = _mm512_and_si512(r, _mm512_set1_epi64(0xff));
            let xi = _mm512_i64gather_pd::<8>(i, x_tab);
            let xi1 = _mm512_i64gather_pd::<8>(i, x_tab.add(1));
            let bits = _mm512_or_si512(_mm512_srli_epi64::<12>(r), _mm512_set1_epi64(1024 << 52));
            let u = _mm512_sub_pd(_mm512_castsi512_pd(bits), _mm512_set1_pd(3.0));
            let x = _mm512_mul_pd(u, xi);
            let accepted = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(_mm512_abs_pd(x), xi1);
            _mm512_storeu_pd(
                shift.0.as_mut_ptr(),
                _mm512_mul_pd(_mm512_set1_pd(sigma), x),
            );
            for (w, n) in next.into_iter().enumerate() {
                _mm512_mask_store_epi64(p.add(w) as *mut i64, accepted, n);
            }
            !accepted
        }
    }

    /// The draws that [`LaneStreams::draw_fast_avx512`] left to the lanes in `failed`: each
    /// such lane draws `sigma * z` into `shift` with `rand_distr`'s [`StandardNormal`] from its
    /// untouched generator, and keeps the advanced generator. Out of line and cold.
    #[cold]
    #[inline(never)]
    pub fn redraw(&mut self, failed: u8, sigma: f64, shift: &mut Lanes) {
        for l in (0..LANES).filter(|l| failed >> l & 1 == 1) {
            let mut words = self.lane(l);
            let z: f64 = StateRng(&mut words).sample(StandardNormal);
            shift.0[l] = sigma * z;
            for (w, v) in words.into_iter().enumerate() {
                self.s[w][l] = v;
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::engine::rng;

    /// 8 lanes x 250 000 draws against `rand_distr`'s `StandardNormal` on each lane's own
    /// stream, bit for bit, and the generators' states after. The share of redrawn lanes is
    /// the fast test's rejection probability `p = (1/256) (1 + sum_{i<255} (1 - X[i+1]/X[i]))`
    /// (`u` uniform on `[-1, 1)`; about 1.2%), within 5 binomial standard deviations.
    #[test]
    fn vector_draws_are_each_lanes_standard_normal_stream() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let (seed, first, sigma) = (5, 40, 0.75);
        let mut streams = LaneStreams::new(seed, first, 0);
        let mut reference: Vec<_> = (0..LANES)
            .map(|l| rng::stream(seed, first + l as u64, 0))
            .collect();
        let table = ZigguratTable::get();
        let mut redrawn = 0;
        let mut shift = Lanes::ZERO;
        for _ in 0..250_000 {
            // SAFETY: AVX-512F checked above.
            let failed = unsafe { streams.draw_fast_avx512(table, sigma, &mut shift) };
            redrawn += failed.count_ones();
            if failed != 0 {
                streams.redraw(failed, sigma, &mut shift);
            }
            for (l, r) in reference.iter_mut().enumerate() {
                let z: f64 = r.sample(StandardNormal);
                assert_eq!(shift.0[l].to_bits(), (sigma * z).to_bits());
            }
        }
        let x = table.abscissae();
        let p = (1.0 + (0..255).map(|i| 1.0 - x[i + 1] / x[i]).sum::<f64>()) / 256.0;
        let n = 2_000_000.0;
        let (mean, sd) = (n * p, (n * p * (1.0 - p)).sqrt());
        assert!(
            (redrawn as f64 - mean).abs() < 5.0 * sd,
            "{redrawn} of {n} draws redrawn, expected {mean:.0} +- {sd:.0}"
        );
        for (l, r) in reference.iter_mut().enumerate() {
            let mut words = streams.lane(l);
            let own = rand::RngCore::next_u64(&mut StateRng(&mut words));
            assert_eq!(own, rand::RngCore::next_u64(r));
        }
    }
}
