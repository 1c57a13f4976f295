//! The group step for small one-sample models, with the whole group held in registers.
//!
//! For a model with `D` parameters and one sample ([`SmallLaneKernel::offers_small_lanes`]: T1's valley,
//! T2's product model), full-batch label noise or none
//! (`NoiseModel::full_batch_label_sigma`) and an optimizer whose step splits into a scalar
//! and a per-coordinate part ([`CoordinateRule`]: every built-in one),
//! a group's parameters, gradient and optimizer buffers are `[Lanes; D]` values that live in
//! vector registers (or one aligned cache line each) across steps, instead of buffers that the
//! noise, the model and the optimizer each load and store (see `bench/PROFILE.md`).
//! [`INTERLEAVED`] groups step together in one loop so that their independent dependency
//! chains overlap, and the label shifts are drawn [`AHEAD`] steps ahead, one step of one group
//! at a time between the groups' gradients and updates, so that the draws run while the vector
//! arithmetic waits on the divider. The AVX-512 version draws a group's eight lanes at once
//! with [`LaneStreams`] after its optimizer update; the AVX2 and baseline versions draw lane by
//! lane ([`SPLIT`]). The arithmetic is that of `simulate`'s general group step operation by
//! operation (the same [`SmallLaneKernel::small_lane_gradient`] / [`CoordinateRule::update`] code
//! the other paths run), every lane draws its own `StandardNormal` stream, and the divergence
//! bookkeeping is the caller's, behind [`GroupRecorder`] (the same book as the general step's),
//! so the results are bit-identical, in every version (tested in `simulate::tests` and
//! `engine::streams`). The caller guarantees that the model has `D` parameters and one sample.

use super::normal::{draw_lane_label_shifts, fill_lane_label_shifts};
use super::{rng, CoordinateRule, Isa, LaneStreams, Lanes, SmallLaneKernel, ZigguratTable, LANES};

/// What the register step needs of the bookkeeping of a group's trajectories (divergences,
/// records, which lanes are parked): implemented above the engine (`simulate`'s group book),
/// so that this loop knows nothing of models' observables or of records.
pub trait GroupRecorder {
    /// `parked[l]`: lane `l` is not (or no longer) a running trajectory.
    fn parked(&self) -> &[bool; LANES];
    /// Whether any lane is parked.
    fn any_parked(&self) -> bool;
    /// Lanes still running.
    fn alive(&self) -> usize;
    /// Every lane's loss of this step is its last finite one (the group check passed).
    fn set_last_loss(&mut self, loss: Lanes);
    /// Check the running lanes' losses and gradients of `step` one by one (the group check
    /// failed or some lanes are parked): a lane whose step is bad ends there. `grad_of(l, out)`
    /// writes lane `l`'s gradient into `out` (length `D`).
    fn check_lanes(&mut self, step: u64, loss: &[f64; LANES], grad_of: impl Fn(usize, &mut [f64]));
    /// Record checkpoint `c` (at `step`) of every running lane; `theta_of(l, out)` writes lane
    /// `l`'s parameters. Returns a bit set of the lanes that ended there (to be parked).
    fn record(&mut self, c: usize, step: u64, theta_of: impl Fn(usize, &mut [f64])) -> u32;
    /// Whether the run was asked to stop: checked every [`STOP_EVERY`] steps and after every
    /// checkpoint, where the task then ends (its outputs are incomplete). Never, unless a
    /// recorder says so.
    fn stopped(&self) -> bool {
        false
    }
}

/// Steps between two checks of a run's stop flag inside a checkpoint interval (one relaxed
/// atomic load; a stopped run ends within this many steps of every group, however far apart
/// its checkpoints are).
pub const STOP_EVERY: u64 = 1024;

/// Whether every lane's loss is finite and at most `max_loss` and every gradient entry is
/// finite, for a group's losses and its gradient coordinates (each the values of all lanes).
/// Branch-free (vectorised): `x * 0` is `0` for finite `x` and NaN otherwise, and
/// `NaN <= max_loss` is false. Shared by the register step and `simulate`'s general step.
#[inline(always)]
pub fn group_is_fine(loss: Lanes, grad: impl IntoIterator<Item = Lanes>, max_loss: f64) -> bool {
    let mut poison = loss;
    for g in grad {
        poison += g * 0.0;
    }
    poison.0.iter().fold(true, |a, &p| a & (p <= max_loss))
}

/// Groups advanced together by one task of the register step: their dependency chains are
/// independent, so the processor overlaps them. One group's step is a chain of dependent
/// vector operations (T1: about 15 including a square root and a division; Adam adds another
/// square root and division) whose latency, not the arithmetic, bounds a lone group.
/// Measured side by side on T1/T2 (quick, AVX-512): 4 groups against 1, SGD +0-10%, heavy
/// ball +10%, Adam +30-40%; 2 groups sit in between. With the vectorised draws
/// ([`LaneStreams`]) 8 groups against 4: T1 Adam +15-25%, T1 SGD / heavy ball +5-15%, T2
/// within noise (one-core loop, `bench/PROFILE.md`); with scalar draws (the AVX2 and baseline
/// versions) 8 and 4 are level.
pub const INTERLEAVED: usize = 8;

/// One task of the register step: the groups `groups[0..INTERLEAVED]` (each `(first
/// trajectory, lanes in use)`; a group with 0 lanes in use is padding) of a `D`-parameter
/// one-sample model under full-batch label noise of `sigma` (0: none), started at `theta`
/// (lanes not in use at `start`), each group's bookkeeping in `books`.
pub struct RegisterTask<'a, K, R, const D: usize> {
    /// The model's register kernel.
    pub kernel: &'a K,
    /// Label-noise scale (0: none).
    pub sigma: f64,
    /// The optimizer.
    pub rule: &'a R,
    /// Master seed: lane `l` of a group draws from `rng::stream(seed, first + l, GRADIENT_NOISE)`.
    pub seed: u64,
    /// A trajectory whose loss exceeds this (or is not finite) has diverged.
    pub max_loss: f64,
    /// The common start, where parked lanes are held.
    pub start: [f64; D],
    /// Every group's start, lane by lane.
    pub theta: [[Lanes; D]; INTERLEAVED],
    /// The checkpoints (steps), increasing.
    pub cps: &'a [u64],
    /// The groups: `(first trajectory, lanes in use)`.
    pub groups: [(usize, usize); INTERLEAVED],
    /// Told `steps * running trajectories` after each checkpoint.
    pub progress: &'a (dyn Fn(u64, usize) + Sync),
}

/// Run a task with the groups in registers, updating `books`; returns the steps run (fewer
/// than the last checkpoint when every lane ended). The caller checks the conditions in the
/// module documentation.
///
/// The step loop is compiled three times, for AVX-512F, AVX2 and the baseline, and the widest
/// version the CPU runs is taken ([`Isa::widest`]): the groups' values need `4 D` (Adam)
/// 8-wide registers per group, which fit AVX-512's 32 but not the baseline's 16 two-wide
/// ones; the AVX-512 version also draws the label noise eight lanes at a time
/// ([`LaneStreams`]). Results do not depend on the version (element-wise IEEE arithmetic, no
/// contraction into fused multiply-adds, every lane's own `StandardNormal` stream; tested).
pub fn run_groups_in_registers<
    K: SmallLaneKernel,
    R: CoordinateRule,
    B: GroupRecorder,
    const D: usize,
>(
    task: &RegisterTask<'_, K, R, D>,
    books: &mut [B; INTERLEAVED],
) -> u64 {
    run_groups_with::<K, R, B, D>(task, books, Isa::widest())
}

/// [`run_groups_in_registers`] compiled for `isa`, which the CPU must run (checked).
pub fn run_groups_with<K: SmallLaneKernel, R: CoordinateRule, B: GroupRecorder, const D: usize>(
    task: &RegisterTask<'_, K, R, D>,
    books: &mut [B; INTERLEAVED],
    isa: Isa,
) -> u64 {
    /// [`run_groups`] compiled with AVX-512F enabled, drawing with [`LaneStreams`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn avx512<K: SmallLaneKernel, R: CoordinateRule, B: GroupRecorder, const D: usize>(
        task: &RegisterTask<'_, K, R, D>,
        books: &mut [B; INTERLEAVED],
    ) -> u64 {
        run_groups::<K, R, B, D, true>(task, books)
    }
    /// [`run_groups`] compiled with AVX2 enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2<K: SmallLaneKernel, R: CoordinateRule, B: GroupRecorder, const D: usize>(
        task: &RegisterTask<'_, K, R, D>,
        books: &mut [B; INTERLEAVED],
    ) -> u64 {
        run_groups::<K, R, B, D, false>(task, books)
    }
    assert!(isa.available(), "this CPU does not run {isa:?}");
    match isa {
        // SAFETY: the CPU has AVX-512F (checked just above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::<K, R, B, D>(task, books) },
        // SAFETY: the CPU has AVX2 (checked just above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::<K, R, B, D>(task, books) },
        _ => run_groups::<K, R, B, D, false>(task, books),
    }
}

/// The step loop itself (see [`run_groups_in_registers`]). With `VECTOR_DRAWS` each group
/// draws its lanes' label shifts with [`LaneStreams`] (AVX-512 code: only the AVX-512F
/// version sets it), otherwise lane by lane with
/// [`draw_lane_label_shifts`].
#[inline(always)]
fn run_groups<
    K: SmallLaneKernel,
    R: CoordinateRule,
    B: GroupRecorder,
    const D: usize,
    const VECTOR_DRAWS: bool,
>(
    task: &RegisterTask<'_, K, R, D>,
    books: &mut [B; INTERLEAVED],
) -> u64 {
    let RegisterTask {
        kernel,
        sigma,
        rule,
        seed,
        max_loss,
        start,
        mut theta,
        cps,
        groups,
        progress,
    } = *task;
    const G: usize = INTERLEAVED;
    // Unused lanes get the streams of the trajectory numbers after the last (never recorded).
    // Both forms of the same streams; a run draws from one of them only.
    let mut rngs: [[rng::TrajectoryRng; LANES]; G] = std::array::from_fn(|g| {
        std::array::from_fn(|l| rng::stream(seed, (groups[g].0 + l) as u64, rng::GRADIENT_NOISE))
    });
    let mut streams: [LaneStreams; G] =
        std::array::from_fn(|g| LaneStreams::new(seed, groups[g].0 as u64, rng::GRADIENT_NOISE));
    // The scalar state only (step counter, powers), shared: the groups step in lockstep. The
    // buffers are `buffers`.
    let mut clock = rule.start();
    let mut buffers = [[rule.zero_buffers::<Lanes>(); D]; G];
    let mut grad = [[Lanes::ZERO; D]; G];
    let mut loss = [Lanes::ZERO; G];
    // Label shifts of every group for the `AHEAD` steps from `step` on, a ring: slot `ahead`
    // holds step `step`'s. The first `AHEAD` steps are drawn here; then each step, once its
    // shifts are read, draws step `step + AHEAD`'s into the same slot, between the groups'
    // vector arithmetic (see `NoiseModel::draw_lane_label_shifts`). Every lane thus draws its
    // steps in order; the draws beyond the last step are never used; nothing else draws from
    // these streams.
    let mut shifts = [[Lanes::ZERO; AHEAD]; G];
    let zig = ZigguratTable::get();
    for g in 0..G {
        if !VECTOR_DRAWS {
            fill_lane_label_shifts(sigma, &mut rngs[g], &mut shifts[g]);
        } else if sigma > 0.0 {
            for slot in shifts[g].iter_mut() {
                // SAFETY: only the AVX-512F version sets `VECTOR_DRAWS`, and it runs only on a
                // CPU with AVX-512F (`run_groups_with`).
                let failed = unsafe { vector_draw(&mut streams[g], zig, sigma, slot) };
                if failed != 0 {
                    streams[g].redraw(failed, sigma, slot);
                }
            }
        }
    }
    let mut ahead = 0;
    let mut step = 0u64;
    'checkpoints: for (c, &target) in cps.iter().enumerate() {
        while step < target {
            if step.is_multiple_of(STOP_EVERY) && books.iter().any(|b| b.stopped()) {
                break 'checkpoints;
            }
            let mut fine = [true; G];
            // Lanes that failed the fast test, per group and all together (the union in a
            // register: one wide load of the byte array would wait for its eight stores).
            let (mut failed, mut any_failed) = ([0u8; G], 0u8);
            for g in 0..G {
                loss[g] =
                    kernel.small_lane_gradient::<D>(&theta[g], shifts[g][ahead], &mut grad[g]);
                fine[g] = group_is_fine(loss[g], grad[g], max_loss);
                if sigma > 0.0 && !VECTOR_DRAWS {
                    draw_lane_label_shifts(
                        sigma,
                        &mut rngs[g],
                        &mut shifts[g][ahead],
                        0..SPLIT,
                        zig,
                    );
                }
            }
            for (g, book) in books.iter_mut().enumerate() {
                if fine[g] && !book.any_parked() {
                    book.set_last_loss(loss[g]);
                } else {
                    // Copies, so that the group values never have their address taken.
                    let gr = grad[g];
                    book.check_lanes(step, &loss[g].0, |l, out| {
                        for (o, gk) in out.iter_mut().zip(&gr) {
                            *o = gk.0[l];
                        }
                    });
                    let parked = *book.parked();
                    for l in (0..LANES).filter(|&l| parked[l]) {
                        for gk in grad[g].iter_mut() {
                            gk.0[l] = 0.0;
                        }
                    }
                }
            }
            let scalars = rule.begin_step(&mut clock);
            for g in 0..G {
                for k in 0..D {
                    rule.update(&scalars, &mut theta[g][k], &mut buffers[g][k], grad[g][k]);
                }
                if sigma > 0.0 {
                    if VECTOR_DRAWS {
                        // SAFETY: as for the first draws above.
                        failed[g] = unsafe {
                            vector_draw(&mut streams[g], zig, sigma, &mut shifts[g][ahead])
                        };
                        any_failed |= failed[g];
                    } else {
                        draw_lane_label_shifts(
                            sigma,
                            &mut rngs[g],
                            &mut shifts[g][ahead],
                            SPLIT..LANES,
                            zig,
                        );
                    }
                }
            }
            // The lanes that failed the fast test (about 1.2% of draws) draw again before they
            // draw next.
            if VECTOR_DRAWS && any_failed != 0 {
                for g in (0..G).filter(|&g| failed[g] != 0) {
                    streams[g].redraw(failed[g], sigma, &mut shifts[g][ahead]);
                }
            }
            ahead = (ahead + 1) % AHEAD;
            for (th, book) in theta.iter_mut().zip(books.iter()) {
                if book.any_parked() {
                    park(th, &start, book.parked());
                }
            }
            step += 1;
            if books.iter().all(|b| b.alive() == 0) {
                break;
            }
        }
        let running: usize = groups.iter().map(|g| g.1).sum();
        progress(target - if c == 0 { 0 } else { cps[c - 1] }, running);
        for (th, book) in theta.iter_mut().zip(books.iter_mut()) {
            let copy = *th;
            let ended = book.record(c, step, |l, out| {
                for (o, t) in out.iter_mut().zip(&copy) {
                    *o = t.0[l];
                }
            });
            if ended != 0 {
                let mask = std::array::from_fn(|l| ended & (1 << l) != 0);
                park(th, &start, &mask);
            }
        }
        if books.iter().all(|b| b.alive() == 0) || books.iter().any(|b| b.stopped()) {
            break;
        }
    }
    step
}

/// Steps of label shifts held ahead, a ring of `INTERLEAVED x AHEAD x LANES` values (8 KiB,
/// first-level cache): a slot is written `AHEAD` steps before it is read, long after the
/// stores have left the store buffer, so the vector load of a step's shifts never waits on
/// them (the scalar draws store a slot lane by lane, which a wide load cannot take from the
/// store buffer).
const AHEAD: usize = 16;

/// Scalar draws (AVX2 and baseline versions; the AVX-512 version draws all eight lanes of a group
/// at once after its update): each step, lanes `0..SPLIT` of a group draw their shift for step
/// `step + AHEAD` right after the group's gradient and lanes `SPLIT..LANES` right after its
/// optimizer update ([`draw_lane_label_shifts`], fully inlined, no call on the common
/// path). So the draws sit next to the divider work they can overlap: the valley gradient has one
/// square root and one division per group, Adam's update two of each (`D = 2`), hence about a third
/// and two thirds. Measured side by side against drawing 16 steps at a time in a separate loop
/// (`bench --tasks t1,t2`, full length, three alternating rounds, medians), with 3 of 8 after the
/// gradient: T1 SGD / heavy ball / Adam +25% / +25% / +24%, T2 SGD / Adam +29% / +32%. Then 2 of 8
/// against 3 of 8 (seven alternating rounds, idle machine): T1 Adam 58% -> 61% of the RNG floor, T2
/// Adam 61% -> 63%, SGD +2-6%, heavy ball within noise; 5 of 8: no better than 3. All eight lanes
/// after the gradient: T1 Adam only +8% (quick runs); one chunk after each coordinate's update: no
/// better (`bench/PROFILE.md`).
const SPLIT: usize = 2;

/// [`LaneStreams::draw_fast_avx512`] where it exists (x86-64; `run_groups` only draws with it
/// in its AVX-512F version, so elsewhere this is never reached).
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
unsafe fn vector_draw(
    streams: &mut LaneStreams,
    table: &ZigguratTable,
    sigma: f64,
    shift: &mut Lanes,
) -> u8 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: passed on to the caller.
    return unsafe { streams.draw_fast_avx512(table, sigma, shift) };
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (streams, table, sigma, shift);
        unreachable!("vector draws exist only in the x86-64 AVX-512F version")
    }
}

/// Put the lanes marked in `mask` back at `start`.
#[inline(always)]
fn park<const D: usize>(theta: &mut [Lanes; D], start: &[f64; D], mask: &[bool; LANES]) {
    for (t, &s) in theta.iter_mut().zip(start) {
        for (x, &m) in t.0.iter_mut().zip(mask) {
            if m {
                *x = s;
            }
        }
    }
}
