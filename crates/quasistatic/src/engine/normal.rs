//! Standard normal draws as the engine's step loops need them: `rand_distr`'s
//! [`StandardNormal`] bit for bit, with the ziggurat's common path inlined
//! ([`standard_normal_inline`]), and the label shifts of a group's lanes drawn ahead
//! ([`fill_lane_label_shifts`]) or one step at a time ([`draw_lane_label_shifts`]).

use rand::Rng;
use rand_distr::StandardNormal;

use super::lanes::{Lanes, LANES};
use super::rng::TrajectoryRng;

/// The label shifts of a one-sample model's group for the next `shifts.len()` steps under
/// full-batch label noise of this `sigma` (from `noise::NoiseModel::full_batch_label_sigma`):
/// `shifts[k]` holds step `k`'s shift of every lane. Each lane draws from its own stream
/// exactly what `noise::NoiseModel::lane_stochastic_gradients` would draw over those steps, in
/// the same order (nothing when `sigma == 0`: all zero), so the results are bit-identical.
/// Not inlined on purpose: it fills blocks outside vector loops (the register group step
/// uses it for its first `AHEAD` steps, then [`draw_lane_label_shifts`] one
/// step at a time inside the loop).
#[inline(never)]
pub fn fill_lane_label_shifts(sigma: f64, rngs: &mut [TrajectoryRng; LANES], shifts: &mut [Lanes]) {
    for (l, r) in rngs.iter_mut().enumerate() {
        for s in shifts.iter_mut() {
            s.0[l] = if sigma > 0.0 {
                let z: f64 = r.sample(StandardNormal);
                sigma * z
            } else {
                0.0
            };
        }
    }
}

/// One step's label shifts of the lanes `lanes` of a group under full-batch label noise of
/// `sigma > 0`: lane `l` of `shift` gets `sigma * z` with `z` the next [`StandardNormal`] of
/// `rngs[l]`, the same number [`fill_lane_label_shifts`] draws there (tested).
/// Inlined on purpose, unlike that function: the register group step's AVX2 and baseline
/// versions (`engine::registers`; the AVX-512 one draws with `LaneStreams`) issue these
/// draws, scalar integer work, between the groups' vector arithmetic (bound by the
/// divider), so both run at once; measured there, T1/T2
/// +24-32% at full length (`bench/PROFILE.md`, "Draws overlapped with the arithmetic"). Each draw is
/// [`standard_normal_inline`], whose common path has no call: a call would force the
/// vector values live across it to be saved and restored.
#[inline(always)]
pub fn draw_lane_label_shifts(
    sigma: f64,
    rngs: &mut [TrajectoryRng; LANES],
    shift: &mut Lanes,
    lanes: std::ops::Range<usize>,
    table: &ZigguratTable,
) {
    for l in lanes {
        shift.0[l] = sigma * standard_normal_inline(&mut rngs[l], table);
    }
}

/// `rng.sample(StandardNormal)`, bit for bit and consuming the same numbers, with the
/// ziggurat's common path (one `u64`, about 98.8% of draws) written out and fully inlined and
/// everything else out of line (`standard_normal_slow`).
///
/// Why: `rand_distr`'s ziggurat is inlined too, but its rare paths call libm (`exp`, `ln`)
/// inside the same function, so a caller holding values in vector registers must save and
/// restore them around the draw. Here the common path has no call, and the rare one starts
/// over from the untouched generator: the draw works on a copy of the state that is written
/// back only when the fast test accepts, so `rand_distr`'s own code redraws exactly the same
/// numbers (tested against [`StandardNormal`] over 2 million draws, slow paths included).
/// The fast test is `rand_distr` 0.5's: `i` = low 8 bits, `u` in `[-1, 1)` from the high 52
/// bits, `x = u X[i]`, accepted when `|x| < X[i + 1]`.
#[inline(always)]
pub fn standard_normal_inline(rng: &mut TrajectoryRng, table: &ZigguratTable) -> f64 {
    use rand::RngCore;
    let mut next = rng.clone();
    let bits = next.next_u64();
    let i = (bits & 0xff) as usize;
    // `(bits >> 12).into_float_with_exponent(1) - 3.0` in `rand_distr`: a value in `[-1, 1)`.
    let u = f64::from_bits((bits >> 12) | (1024 << 52)) - 3.0;
    let x = u * table.0[i];
    if x.abs() < table.0[i + 1] {
        *rng = next;
        x
    } else {
        standard_normal_slow(rng)
    }
}

/// The rare path of [`standard_normal_inline`]: `rng` is still the generator before the draw,
/// so `rand_distr` draws the same first number, fails the same fast test and goes on as it
/// always does. Out of line and cold, so that the callers' common path stays free of calls.
#[cold]
#[inline(never)]
fn standard_normal_slow(rng: &mut TrajectoryRng) -> f64 {
    rng.sample(StandardNormal)
}

/// The abscissae `X[0..=256]` of the ziggurat behind `rand_distr`'s [`StandardNormal`], for
/// the fast test of [`standard_normal_inline`]. Private in `rand_distr`, so read from its own
/// sampler rather than copied: fed the `u64` with `i` in its low 8 bits and `u = 2^-10` in its
/// high bits, `StandardNormal` accepts at once (`|u X[i]| < X[i + 1]` for every `i < 255`) and
/// returns `2^-10 X[i]`, exactly. `X[255]` cannot be read that way and is not needed:
/// `X[256] = 0`, so `rand_distr` never accepts `i = 255` on the fast path, nor does
/// [`standard_normal_inline`] with `X[255] = X[256] = 0`. Should a later `rand_distr` change
/// its ziggurat, the bit-for-bit test against [`StandardNormal`] fails.
#[derive(Debug)]
pub struct ZigguratTable([f64; 257]);

impl ZigguratTable {
    /// The abscissae `X[0..=256]` (with `X[255] = X[256] = 0`, see above).
    pub fn abscissae(&self) -> &[f64; 257] {
        &self.0
    }

    /// The table, read once per process.
    pub fn get() -> &'static ZigguratTable {
        static TABLE: std::sync::OnceLock<ZigguratTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            /// A generator that returns one chosen `u64` (a second request is a bug: the
            /// chosen draws are accepted at once).
            struct Probe(Option<u64>);
            impl rand::RngCore for Probe {
                fn next_u32(&mut self) -> u32 {
                    self.next_u64() as u32
                }
                fn next_u64(&mut self) -> u64 {
                    self.0.take().expect("ziggurat probe: one draw only")
                }
                fn fill_bytes(&mut self, dst: &mut [u8]) {
                    rand::rand_core::impls::fill_bytes_via_next(self, dst)
                }
            }
            // High 52 bits: the mantissa of 3 + 2^-10 in [2, 4), i.e. u = 2^-10.
            const U_BITS: u64 = ((1 << 51) | (1 << 41)) << 12;
            let mut x = [0.0; 257];
            for (i, xi) in x.iter_mut().enumerate().take(255) {
                let z: f64 = Probe(Some(U_BITS | i as u64)).sample(StandardNormal);
                *xi = z * 1024.0;
            }
            ZigguratTable(x)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng;

    /// The inlined ziggurat equals `rand_distr`'s `StandardNormal` bit for bit and leaves the
    /// generator in the same state, over 2 million draws from several streams, with both rare
    /// paths exercised: draws that consume more than one `u64` (the wedge test, rejections) and
    /// tail draws (`|z|` beyond the base strip's `R = 3.654...`).
    #[test]
    fn inline_normal_is_rand_distr_standard_normal_bit_for_bit() {
        use rand::RngCore;
        let (mut slow, mut tail) = (0usize, 0usize);
        for j in 0..4 {
            let mut a = rng::stream(2024, j, 0);
            let mut b = a.clone();
            for _ in 0..500_000 {
                let mut one = a.clone();
                one.next_u64();
                let za = standard_normal_inline(&mut a, ZigguratTable::get());
                let zb: f64 = b.sample(StandardNormal);
                assert_eq!(za.to_bits(), zb.to_bits());
                assert_eq!(a, b, "generators diverged");
                slow += usize::from(a != one);
                tail += usize::from(za.abs() > 3.654_152_885_361_009);
            }
        }
        assert!(
            slow > 1000 && tail > 100,
            "rare paths: {slow} slow, {tail} tail"
        );
    }

    /// One step's shifts drawn inline equal the block fill's, lane by lane.
    #[test]
    fn inline_step_shifts_equal_the_block_fill() {
        let sigma = 0.3;
        let mut a: [TrajectoryRng; LANES] = std::array::from_fn(|l| rng::stream(5, l as u64, 0));
        let mut b = a.clone();
        let mut block = [Lanes::ZERO; 64];
        fill_lane_label_shifts(sigma, &mut a, &mut block);
        for expect in block {
            let mut s = Lanes::ZERO;
            draw_lane_label_shifts(sigma, &mut b, &mut s, 0..LANES / 2, ZigguratTable::get());
            draw_lane_label_shifts(
                sigma,
                &mut b,
                &mut s,
                LANES / 2..LANES,
                ZigguratTable::get(),
            );
            assert_eq!(s.0.map(f64::to_bits), expect.0.map(f64::to_bits));
        }
    }

    /// The ziggurat table read from `rand_distr` has the known shape of the 256-layer normal
    /// ziggurat (Marsaglia and Tsang 2000): `X[1] = R = 3.6541528853610088` (the base strip's
    /// edge), `X[0] = v / f(R)` with the layer area `v = 0.00492867323399`, strictly decreasing
    /// to `X[256] = 0` (`X[255]` unread, see `ZigguratTable`).
    #[test]
    fn ziggurat_table_has_the_known_shape() {
        let x = &ZigguratTable::get().0;
        assert!((x[1] - 3.654_152_885_361_009).abs() < 1e-15, "R = {}", x[1]);
        let f_r = (-0.5 * x[1] * x[1]).exp();
        assert!(
            (x[0] - 0.004_928_673_233_99 / f_r).abs() < 1e-9,
            "X[0] = {}",
            x[0]
        );
        assert!(x[..255].windows(2).all(|w| w[0] > w[1]) && x[254] > 0.0);
        assert_eq!((x[255], x[256]), (0.0, 0.0));
    }
}
