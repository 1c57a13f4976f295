//! The group step for small one-sample models, with the whole group held in registers.
//!
//! For a model with `D` parameters and one sample ([`Model::offers_small_lanes`]: T1's valley,
//! T2's product model), full-batch label noise or none
//! ([`NoiseModel::full_batch_label_sigma`]) and an optimizer whose step splits into a scalar
//! and a per-coordinate part ([`Optimizer::offers_coordinate_update`]: every built-in one),
//! a group's parameters, gradient and optimizer buffers are `[Lanes; D]` values that live in
//! vector registers across steps, instead of buffers that the noise, the model and the
//! optimizer each load and store (see `bench/PROFILE.md`). [`INTERLEAVED`] groups step
//! together in one loop so that their independent dependency chains overlap, and the label
//! shifts are drawn [`AHEAD`] steps ahead, one step of one group at a time between the groups'
//! gradients and updates, so that the draws (scalar integer work) run while the vector
//! arithmetic waits on the divider ([`SPLIT`]). The arithmetic is that of
//! [`run_group`](super::run_group) operation by operation (the same
//! [`Model::small_lane_gradient`] / [`Optimizer::update_coordinate`] code the other paths run),
//! and the divergence bookkeeping is the same [`GroupBook`], so the results are
//! bit-identical (tested in `simulate::tests`).

use indicatif::ProgressBar;

use super::{group_is_fine, start_of, EnsembleSpec, GroupBook, TrajectoryOutput, LANES};
use crate::lanes::Lanes;
use crate::model::Model;
use crate::noise::NoiseModel;
use crate::optim::Optimizer;
use crate::rng;

/// Groups advanced together by one task of the register step: their dependency chains are
/// independent, so the processor overlaps them. One group's step is a chain of dependent
/// vector operations (T1: about 15 including a square root and a division; Adam adds another
/// square root and division) whose latency, not the arithmetic, bounds a lone group.
/// Measured side by side on T1/T2 (quick, AVX-512): 4 groups against 1, SGD +0-10%, heavy
/// ball +10%, Adam +30-40%; 2 groups sit in between.
pub(super) const INTERLEAVED: usize = 4;

/// One task of the register step: the groups `groups[0..INTERLEAVED]` (each `(first
/// trajectory, lanes in use)`; a group with 0 lanes in use is padding) of a `D`-parameter
/// one-sample model under full-batch label noise of `sigma` (0: none).
pub(super) struct RegisterTask<'a, M, O> {
    pub(super) model: &'a M,
    pub(super) sigma: f64,
    pub(super) optimizer: &'a O,
    pub(super) spec: &'a EnsembleSpec,
    pub(super) cps: &'a [u64],
    pub(super) groups: [(usize, usize); INTERLEAVED],
    pub(super) bar: Option<&'a ProgressBar>,
}

/// Run a task with the groups in registers; returns the outputs of all its trajectories in
/// order. The caller checks the conditions in the module documentation.
///
/// The step loop is compiled three times, for AVX-512F, AVX2 and the baseline, and the widest
/// version the CPU runs is taken: the groups' values need `4 D` (Adam) 8-wide registers per
/// group, which fit AVX-512's 32 but not the baseline's 16 two-wide ones. Results do not
/// depend on the version (element-wise IEEE arithmetic, no contraction into fused
/// multiply-adds).
pub(super) fn run_groups_in_registers<M: Model, O: Optimizer, const D: usize>(
    task: &RegisterTask<'_, M, O>,
) -> Vec<TrajectoryOutput> {
    /// [`run_groups`] compiled with AVX-512F enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn avx512<M: Model, O: Optimizer, const D: usize>(
        task: &RegisterTask<'_, M, O>,
    ) -> Vec<TrajectoryOutput> {
        run_groups::<M, O, D>(task)
    }
    /// [`run_groups`] compiled with AVX2 enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2<M: Model, O: Optimizer, const D: usize>(
        task: &RegisterTask<'_, M, O>,
    ) -> Vec<TrajectoryOutput> {
        run_groups::<M, O, D>(task)
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512::<M, O, D>(task) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2::<M, O, D>(task) };
        }
    }
    run_groups::<M, O, D>(task)
}

/// The step loop itself (see [`run_groups_in_registers`]).
#[inline(always)]
fn run_groups<M: Model, O: Optimizer, const D: usize>(
    task: &RegisterTask<'_, M, O>,
) -> Vec<TrajectoryOutput> {
    let RegisterTask {
        model,
        sigma,
        optimizer,
        spec,
        cps,
        groups,
        bar,
    } = *task;
    const G: usize = INTERLEAVED;
    assert_eq!(
        model.dim(),
        D,
        "register group step for the wrong dimension"
    );
    assert_eq!(model.n_samples(), 1, "register group step needs one sample");
    let start: [f64; D] = std::array::from_fn(|k| spec.start[k]);
    // Every lane starts parked at the common start; the lanes in use get their own starts.
    let mut theta: [[Lanes; D]; G] = [start.map(Lanes::splat); G];
    for (th, &(first, count)) in theta.iter_mut().zip(&groups) {
        for l in 0..count {
            for (t, s) in th.iter_mut().zip(start_of(spec, first + l)) {
                t.0[l] = s;
            }
        }
    }
    // Unused lanes get the streams of the trajectory numbers after the last (never recorded).
    let mut rngs: [[rng::TrajectoryRng; LANES]; G] = std::array::from_fn(|g| {
        std::array::from_fn(|l| rng::stream(spec.seed, (groups[g].0 + l) as u64, 0))
    });
    // The scalar state only (step counter, powers), shared: the groups step in lockstep. The
    // buffers are `buffers`.
    let mut state = optimizer.init(0);
    let mut buffers = [[[Lanes::ZERO; 2]; D]; G];
    let mut grad = [[Lanes::ZERO; D]; G];
    let mut loss = [Lanes::ZERO; G];
    let mut lane_grad = vec![0.0; D];
    let mut books: [GroupBook<'_, M>; G] =
        std::array::from_fn(|g| GroupBook::new(model, spec, cps, groups[g].0, groups[g].1));
    let max_loss = spec.max_loss;
    // Label shifts of every group for the `AHEAD` steps from `step` on, a ring: slot `ahead`
    // holds step `step`'s. The first `AHEAD` steps are drawn here; then each step, once its
    // shifts are read, draws step `step + AHEAD`'s into the same slot, between the groups'
    // vector arithmetic (see `NoiseModel::draw_lane_label_shifts`). Every lane thus draws its
    // steps in order; the draws beyond the last step are never used; nothing else draws from
    // these streams.
    let mut shifts = [[Lanes::ZERO; AHEAD]; G];
    for (sh, r) in shifts.iter_mut().zip(rngs.iter_mut()) {
        NoiseModel::fill_lane_label_shifts(sigma, r, sh);
    }
    let mut ahead = 0;
    let zig = crate::noise::ZigguratTable::get();
    let mut step = 0u64;
    for (c, &target) in cps.iter().enumerate() {
        while step < target {
            let mut fine = [true; G];
            for g in 0..G {
                loss[g] = model.small_lane_gradient::<D>(&theta[g], shifts[g][ahead], &mut grad[g]);
                fine[g] = group_is_fine(loss[g], grad[g], max_loss);
                if sigma > 0.0 {
                    NoiseModel::draw_lane_label_shifts(
                        sigma,
                        &mut rngs[g],
                        &mut shifts[g][ahead],
                        0..SPLIT,
                        zig,
                    );
                }
            }
            for (g, book) in books.iter_mut().enumerate() {
                if fine[g] && !book.any_parked {
                    book.last_loss = loss[g].0;
                } else {
                    // Copies, so that the group values never have their address taken.
                    let gr = grad[g];
                    book.check_lanes(step, &loss[g].0, &mut lane_grad, |l, out| {
                        for (o, gk) in out.iter_mut().zip(&gr) {
                            *o = gk.0[l];
                        }
                    });
                    for l in (0..LANES).filter(|&l| book.parked[l]) {
                        for gk in grad[g].iter_mut() {
                            gk.0[l] = 0.0;
                        }
                    }
                }
            }
            let scalars = optimizer.begin_step(&mut state);
            for g in 0..G {
                for k in 0..D {
                    optimizer.update_coordinate(
                        &scalars,
                        &mut theta[g][k],
                        &mut buffers[g][k],
                        grad[g][k],
                    );
                }
                if sigma > 0.0 {
                    NoiseModel::draw_lane_label_shifts(
                        sigma,
                        &mut rngs[g],
                        &mut shifts[g][ahead],
                        SPLIT..LANES,
                        zig,
                    );
                }
            }
            ahead = (ahead + 1) % AHEAD;
            for (th, book) in theta.iter_mut().zip(&books) {
                if book.any_parked {
                    park(th, &start, &book.parked);
                }
            }
            step += 1;
            if books.iter().all(|b| b.alive == 0) {
                break;
            }
        }
        if let Some(b) = bar {
            let running: usize = groups.iter().map(|g| g.1).sum();
            b.inc((target - if c == 0 { 0 } else { cps[c - 1] }) * running as u64);
        }
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
        if books.iter().all(|b| b.alive == 0) {
            break;
        }
    }
    books.into_iter().flat_map(|b| b.finish(step)).collect()
}

/// Steps of label shifts held ahead, a ring of `INTERLEAVED x AHEAD x LANES` values (4 KiB,
/// first-level cache): a slot is written `AHEAD` steps before it is read, long after the
/// scalar stores have left the store buffer, so the vector load of a step's shifts never
/// waits on them.
const AHEAD: usize = 16;

/// Each step, lanes `0..SPLIT` of a group draw their shift for step `step + AHEAD` right after
/// the group's gradient and lanes `SPLIT..LANES` right after its optimizer update
/// ([`NoiseModel::draw_lane_label_shifts`], fully inlined, no call on the common path). So the
/// draws sit next to the divider work they can overlap: the valley gradient has one square
/// root and one division per group, Adam's update two of each (`D = 2`), hence about a third
/// and two thirds. Measured side by side against drawing 16 steps at a time in a separate loop
/// (`bench --tasks t1,t2`, full length, three alternating rounds, medians), with 3 of 8 after
/// the gradient: T1 SGD / heavy ball / Adam +25% / +25% / +24%, T2 SGD / Adam +29% / +32%.
/// Then 2 of 8 against 3 of 8 (seven alternating rounds, idle machine): T1 Adam 58% -> 61% of
/// the RNG floor, T2 Adam 61% -> 63%, SGD +2-6%, heavy ball within noise; 5 of 8: no better
/// than 3. All eight lanes after the gradient: T1 Adam only +8% (quick runs); one chunk after
/// each coordinate's update: no better (`bench/PROFILE.md`).
const SPLIT: usize = 2;

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
