//! Test helpers: a model's group kernel against the lane-by-lane reference, bit for bit.

use crate::engine::{LaneBatch, LANES};
use crate::model::{
    by_lane_scratch_len, lane_gradients, lane_gradients_by_lane, lane_scratch_len, Model,
};

/// Asserts that `model.lane_gradients` equals [`lane_gradients_by_lane`] bit for bit (every
/// gradient coordinate and loss of lanes `0..lanes`) at lanes spread around the model's
/// default start, for the full batch without and with label shifts and for a mini-batch
/// of about two thirds of the samples with per-lane indices. Output and scratch buffers
/// start as `NaN`, so anything read before it is written shows.
pub(crate) fn assert_lane_gradients_bit_identical<M: Model>(model: &M, lanes: usize) {
    assert!(
        model.lane_kernel().is_some(),
        "{}: no lane kernel",
        model.name()
    );
    assert_kernel_bit_identical(model, lanes, |theta, batch, grad, scratch, loss| {
        lane_gradients(model, theta, batch, grad, scratch, loss)
    });
}

/// [`assert_lane_gradients_bit_identical`] for any kernel with the signature of
/// [`lane_gradients`] (e.g. one instruction-set version of a model's kernel).
pub(crate) fn assert_kernel_bit_identical<M: Model>(
    model: &M,
    lanes: usize,
    kernel: impl Fn(&[f64], LaneBatch<'_>, &mut [f64], &mut [f64], &mut [f64; LANES]),
) {
    let (d, n) = (model.dim(), model.n_samples());
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let start = model.default_start();
    let mut theta = vec![0.0; d * LANES];
    for (k, t) in theta.chunks_exact_mut(LANES).enumerate() {
        for v in t.iter_mut() {
            *v = start[k] + 0.4 * uniform();
        }
    }
    let shift: Vec<f64> = (0..n * LANES).map(|_| 0.5 * uniform()).collect();
    let mut perm: Vec<usize> = Vec::with_capacity(n * LANES);
    for _ in 0..LANES {
        let mut p: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            let j = ((uniform() + 1.0) * 0.5 * (k + 1) as f64) as usize;
            p.swap(k, j.min(k));
        }
        perm.extend(p);
    }
    let size = (2 * n / 3).max(1);
    let batches = [
        LaneBatch::full(lanes, n),
        LaneBatch {
            shift: Some(&shift),
            ..LaneBatch::full(lanes, n)
        },
        LaneBatch {
            lanes,
            size,
            indices: Some(&perm),
            stride: n,
            shift: Some(&shift),
        },
    ];
    for (case, batch) in batches.into_iter().enumerate() {
        let mut out = [(); 2].map(|_| {
            (
                vec![f64::NAN; d * LANES],
                vec![f64::NAN; lane_scratch_len(model).max(by_lane_scratch_len(model))],
                [f64::NAN; LANES],
            )
        });
        let [(g1, s1, l1), (g2, s2, l2)] = &mut out;
        kernel(&theta, batch, g1, s1, l1);
        lane_gradients_by_lane(model, &theta, batch, g2, s2, l2);
        for l in 0..lanes {
            assert_eq!(
                l1[l].to_bits(),
                l2[l].to_bits(),
                "case {case}, lane {l}: loss"
            );
            assert!(l1[l].is_finite(), "case {case}, lane {l}: loss");
            for k in 0..d {
                let (a, b) = (g1[k * LANES + l], g2[k * LANES + l]);
                assert!(a.is_finite(), "case {case}, lane {l}, coordinate {k}");
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "case {case}, lane {l}, coordinate {k}"
                );
            }
        }
    }
}
