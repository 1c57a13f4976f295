//! Study 4: which flatness each optimizer seeks (docs/theory.md sections 5, 7).
//!
//! A diagonal linear network `f(x) = sum_j (u_j^2 - v_j^2) x_j` fitted to a sparse regression
//! with fewer samples than features (`n < p`, teacher `w* = 1` on the first `k` features),
//! started at the default minimum-l2 interpolator, with label noise. Label-noise SGD descends
//! `tr H = 4 sum_j m_j (u_j^2 + v_j^2)` (`m_j = mean_i x_ij^2`), an l1-type norm of
//! `w = u^2 - v^2`; Adam descends `tr(diag H)^{1/2} = 2 sum_j sqrt(m_j) (|u_j| + |v_j|)`, an
//! l1/2-type one.
//!
//! For SGD and Adam the study runs the true optimizer (ensemble started in the normal
//! equilibrium, observed at its projection onto the manifold) and the derived manifold
//! dynamics from the same point ([`super::rotation::paired_runs`]), and records test error,
//! `||w||_1`, `||w - w*||^2`, `tr H`, `tr(diag H)^{1/2}` and the effective support size
//! `||w||_1^2 / ||w||_2^2` (a sparsity measure: `k` for the teacher) over time. The last two
//! are not built-in observables: the study wraps the network in [`Tracked`], whose "manifold
//! coordinates" are these two numbers, so that both ensembles record them.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{mean_ci, Claim, Scale, StudyReport};
use crate::compare::{write_comparison, Gap};
use crate::output::write_atomic;
use crate::plot::{band_plot, ensemble_series};
use crate::validate::{paired_runs, Paired, PairedSpec};
use quasistatic::data::{generate, Dataset, SyntheticSpec, Teacher};
use quasistatic::derive::{derive, AdamOptions, DeriveOptions, Regulariser};
use quasistatic::error::{Error, Result};
use quasistatic::model::{Batch, DiagonalNetwork, Model, Scalar};
use quasistatic::noise::NoiseModel;
use quasistatic::observe::Observable;
use quasistatic::optim::{Adam, AnyOptimizer, Schedule, Sgd};
use quasistatic::simulate::EnsembleResult;
use quasistatic::stats::summarize_ensemble;

/// A [`DiagonalNetwork`] whose manifold coordinates are `[tr(diag H)^{1/2}, effective support]`
/// (so that ensembles can record them as `y0`, `y1`); everything else is delegated.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// The network.
    pub net: DiagonalNetwork,
    /// Its training data.
    train: Dataset,
    /// `m_j = (1/n) sum_i x_ij^2`.
    second_moments: Vec<f64>,
}

impl Tracked {
    /// Wrap a network trained on `train`, test data `test` and teacher `teacher`.
    pub fn new(train: Dataset, test: Option<Dataset>, teacher: Option<Vec<f64>>) -> Self {
        let (p, n) = (train.p, train.n);
        let second_moments = (0..p)
            .map(|j| (0..n).map(|i| train.row(i)[j].powi(2)).sum::<f64>() / n as f64)
            .collect();
        Self {
            net: DiagonalNetwork::new(train.clone(), test, teacher),
            train,
            second_moments,
        }
    }

    /// `tr(diag H)^{1/2}`: the exact Hessian diagonal (Gauss-Newton part plus the residual
    /// term `(1/n) sum_i r_i d^2 f_i`), each entry clipped at 0 before the square root.
    pub fn sqrt_diag_trace(&self, theta: &[f64]) -> f64 {
        let (p, n) = (self.train.p, self.train.n);
        let (u, v) = theta.split_at(p);
        let w: Vec<f64> = u.iter().zip(v).map(|(a, b)| a * a - b * b).collect();
        let mut rx = vec![0.0; p];
        for i in 0..n {
            let x = self.train.row(i);
            let r = w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() - self.train.y[i];
            for (acc, &xj) in rx.iter_mut().zip(x) {
                *acc += r * xj / n as f64;
            }
        }
        (0..p)
            .map(|j| {
                let m = self.second_moments[j];
                let hu = 4.0 * u[j] * u[j] * m + 2.0 * rx[j];
                let hv = 4.0 * v[j] * v[j] * m - 2.0 * rx[j];
                hu.max(0.0).sqrt() + hv.max(0.0).sqrt()
            })
            .sum()
    }

    /// Effective support size `||w||_1^2 / ||w||_2^2` of `w = u^2 - v^2`.
    pub fn effective_support(&self, theta: &[f64]) -> f64 {
        let p = self.train.p;
        let (u, v) = theta.split_at(p);
        let (mut l1, mut l2) = (0.0, 0.0);
        for (a, b) in u.iter().zip(v) {
            let w = a * a - b * b;
            l1 += w.abs();
            l2 += w * w;
        }
        l1 * l1 / l2
    }
}

impl Model for Tracked {
    fn name(&self) -> &'static str {
        self.net.name()
    }
    fn dim(&self) -> usize {
        self.net.dim()
    }
    fn n_samples(&self) -> usize {
        self.net.n_samples()
    }
    fn targets(&self) -> &[f64] {
        self.net.targets()
    }
    fn output_and_grad<D: Scalar>(&self, theta: &[D], i: usize, grad_f: &mut [D]) -> D {
        self.net.output_and_grad(theta, i, grad_f)
    }
    fn scratch_len(&self) -> usize {
        self.net.scratch_len()
    }
    fn batch_gradient<D: Scalar>(
        &self,
        theta: &[D],
        batch: Batch<'_>,
        grad: &mut [D],
        scratch: &mut [D],
    ) -> D {
        self.net.batch_gradient(theta, batch, grad, scratch)
    }
    fn default_start(&self) -> Vec<f64> {
        self.net.default_start()
    }
    fn test_error(&self, theta: &[f64]) -> Option<f64> {
        self.net.test_error(theta)
    }
    fn end_to_end_weights(&self, theta: &[f64]) -> Option<Vec<f64>> {
        self.net.end_to_end_weights(theta)
    }
    fn teacher_weights(&self) -> Option<&[f64]> {
        self.net.teacher_weights()
    }
    /// `[tr(diag H)^{1/2}, effective support]` (not coordinates of the manifold: recorded
    /// quantities, see the type docs).
    fn manifold_coordinates(&self, theta: &[f64]) -> Option<Vec<f64>> {
        Some(vec![
            self.sqrt_diag_trace(theta),
            self.effective_support(theta),
        ])
    }
    fn loss_min(&self) -> Option<f64> {
        self.net.loss_min()
    }
}

/// Observables recorded, and their display names.
const RECORDED: [(Observable, &str, &str); 6] = [
    (
        Observable::TraceHessian,
        "trace_hessian",
        "tr H (SGD's regulariser)",
    ),
    (
        Observable::ManifoldCoordinate(0),
        "sqrt_diag_trace",
        "tr(diag H)^1/2 (Adam's regulariser)",
    ),
    (Observable::WeightL1, "weight_l1", "||w||_1"),
    (
        Observable::ManifoldCoordinate(1),
        "effective_support",
        "effective support ||w||_1^2 / ||w||_2^2",
    ),
    (Observable::TestError, "test_error", "test error (MSE)"),
    (
        Observable::TeacherDistance,
        "teacher_distance",
        "||w - w*||^2",
    ),
];

/// Rename `y0`, `y1` to the tracked quantities' names.
fn renamed(r: &EnsembleResult) -> EnsembleResult {
    let mut r = r.clone();
    for (o, name, _) in RECORDED {
        if let Some(k) = r.observable_index(&o.name()) {
            r.observables[k] = name.to_string();
        }
    }
    r
}

/// Final-time statistics of one quantity in one ensemble.
#[derive(Clone, Debug, Serialize)]
pub struct Final {
    /// Optimizer.
    pub optimizer: String,
    /// `true` or `derived`.
    pub dynamics: String,
    /// Quantity.
    pub quantity: String,
    /// Mean at the start (step 0).
    pub start: f64,
    /// Mean at the last step.
    pub end: f64,
    /// 95% half-width of the final mean.
    pub end_ci: f64,
    /// Mean per-trajectory change `end - start`.
    pub change: f64,
    /// Its 95% half-width.
    pub change_ci: f64,
}

fn finals(opt: &str, dynamics: &str, r: &EnsembleResult) -> Vec<Final> {
    let last = r.steps.len() - 1;
    r.observables
        .iter()
        .enumerate()
        .map(|(o, name)| {
            let start = r.column(0, o);
            let end = r.column(last, o);
            let change: Vec<f64> = (0..r.trajectories)
                .filter_map(|j| Some(r.get(j, last, o)? - r.get(j, 0, o)?))
                .collect();
            let (e, eci) = mean_ci(&end);
            let (c, cci) = mean_ci(&change);
            Final {
                optimizer: opt.into(),
                dynamics: dynamics.into(),
                quantity: name.clone(),
                start: start.iter().sum::<f64>() / start.len() as f64,
                end: e,
                end_ci: if eci.is_finite() { eci } else { 0.0 },
                change: c,
                change_ci: if cci.is_finite() { cci } else { 0.0 },
            }
        })
        .collect()
}

/// Run the study (see the module docs).
pub fn run(scale: Scale, dir: &Path, link: &str) -> Result<StudyReport> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let (n, p, k) = scale.pick((8, 12, 2), (16, 24, 3), (40, 100, 5));
    let trajectories = scale.pick(8, 24, 128);
    let sigma = 0.5;
    let sgd_lr = 0.05;
    let adam_lr = 0.002;
    let adam_beta2 = 0.9999;
    let steps: u64 = scale.pick(6_000, 20_000, 100_000);
    let records = scale.pick(6, 20, 40);
    let data = generate(&SyntheticSpec {
        n,
        n_test: 500,
        p,
        teacher: Teacher::Sparse { k, value: 1.0 },
        label_noise: 0.0,
        seed: 3,
    });
    let model = Tracked::new(data.train, data.test, data.teacher);
    let start = model.default_start();
    let noise = NoiseModel::Label { sigma, batch: None };
    let optimizers = [
        (
            "SGD",
            AnyOptimizer::Sgd(Sgd {
                lr: Schedule::Constant(sgd_lr),
            }),
        ),
        (
            "Adam",
            AnyOptimizer::Adam(Adam {
                lr: Schedule::Constant(adam_lr),
                beta1: 0.9,
                beta2: adam_beta2,
                eps: 1e-8,
                weight_decay: 0.0,
            }),
        ),
    ];
    let spec = PairedSpec {
        steps,
        record_every: steps / records,
        trajectories,
        seed: 41,
        observables: RECORDED.iter().map(|r| r.0.clone()).collect(),
        h: None,
        // The fixed point for v contracts slowly once unused features shrink: a relative
        // tolerance of 1e-7 on sqrt(v) + eps is far below every other error here.
        adam: Some(AdamOptions {
            max_iterations: 5000,
            tolerance: 1e-7,
            ..AdamOptions::default()
        }),
        max_loss: 1e8,
        progress: false,
    };
    let mut runs: Vec<(&str, Paired, Vec<Gap>, f64)> = Vec::new();
    let mut cosines = Vec::new();
    for (name, opt) in &optimizers {
        let t0 = std::time::Instant::now();
        let paired = paired_runs(&model, &noise, opt, &start, &spec)?;
        let seconds = t0.elapsed().as_secs_f64();
        let full = derive(
            &model,
            &noise,
            opt,
            &start,
            &DeriveOptions {
                adam: spec.adam.clone().unwrap_or_default(),
                ..DeriveOptions::default()
            },
        )?;
        let cos = |r: Regulariser| {
            full.regularisers
                .iter()
                .find(|x| x.regulariser == r)
                .and_then(|x| x.cosine)
                .unwrap_or(f64::NAN)
        };
        cosines.push((
            *name,
            cos(Regulariser::TraceHessian),
            cos(Regulariser::TraceSqrtDiagHessian),
        ));
        let (gaps, _) = write_comparison(
            &dir.join(name.to_lowercase()),
            &format!("Diagonal network, {name}"),
            ("true", &renamed(&paired.truth)),
            ("derived", &renamed(&paired.derived)),
            1.0,
            "optimizer step",
        )?;
        runs.push((name, paired, gaps, seconds));
    }

    // Plots: each quantity over time, SGD vs Adam, true vs derived.
    for (_, name, label) in RECORDED {
        let mut series = Vec::new();
        for (opt, paired, _, _) in &runs {
            for (what, r) in [("true", &paired.truth), ("derived", &paired.derived)] {
                let r = renamed(r);
                let s = summarize_ensemble(&r);
                if let Some(o) = r.observable_index(name) {
                    let mut ser = ensemble_series(&r, &s, o, &format!("{opt} {what}"));
                    if what == "derived" {
                        ser.outer_lower = None;
                        ser.outer_upper = None;
                    }
                    series.push(ser);
                }
            }
        }
        band_plot(
            &dir.join(format!("{name}.svg")),
            &format!("Diagonal network: {label}"),
            "optimizer step",
            label,
            &series,
        )?;
    }

    // Final statistics.
    let mut all: Vec<Final> = Vec::new();
    for (opt, paired, _, _) in &runs {
        all.extend(finals(opt, "true", &renamed(&paired.truth)));
        all.extend(finals(opt, "derived", &renamed(&paired.derived)));
    }
    let mut csv = String::from("optimizer,dynamics,quantity,start,end,end_ci,change,change_ci\n");
    for f in &all {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            f.optimizer, f.dynamics, f.quantity, f.start, f.end, f.end_ci, f.change, f.change_ci
        );
    }
    write_atomic(&dir.join("finals.csv"), csv.as_bytes())?;
    write_atomic(
        &dir.join("finals.json"),
        serde_json::to_string_pretty(&all)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let get = |opt: &str, dynamics: &str, q: &str| -> Result<&Final> {
        all.iter()
            .find(|f| f.optimizer == opt && f.dynamics == dynamics && f.quantity == q)
            .ok_or_else(|| Error::Numerical(format!("missing {opt} {dynamics} {q}")))
    };

    // Claims.
    let mut claims = Vec::new();
    for (opt, q, what) in [
        ("SGD", "trace_hessian", "tr H"),
        ("Adam", "sqrt_diag_trace", "tr(diag H)^{1/2}"),
    ] {
        let t = get(opt, "true", q)?;
        let d = get(opt, "derived", q)?;
        claims.push(Claim {
            claim: format!("{opt} decreases {what} over time (true and derived)"),
            measured: format!(
                "true {:.4} -> {:.4} (change {:+.4} ± {:.4}); derived {:.4} -> {:.4}",
                t.start, t.end, t.change, t.change_ci, d.start, d.end
            ),
            expected: "a decrease beyond the 95% interval, in both dynamics".into(),
            holds: t.change + t.change_ci < 0.0 && d.change < 0.0,
        });
    }
    let (sgd_cos, adam_cos) = (cosines[0], cosines[1]);
    claims.push(Claim {
        claim: "At the start, SGD's derived drift points along -grad tr H, Adam's along the preconditioned -grad tr(diag H)^{1/2}".into(),
        measured: format!(
            "SGD cosine with tr H / tr(diag H)^1/2 directions: {:.4} / {:.4}; Adam: {:.4} / {:.4}",
            sgd_cos.1, sgd_cos.2, adam_cos.1, adam_cos.2
        ),
        expected: "SGD's cosine with tr H and Adam's with tr(diag H)^1/2 near 1 and above the other regulariser's".into(),
        holds: sgd_cos.1 > 0.99 && adam_cos.2 > 0.99 && sgd_cos.1 > sgd_cos.2 && adam_cos.2 > adam_cos.1,
    });
    let mut differ = Vec::new();
    let mut n_differ = 0;
    for q in ["weight_l1", "effective_support", "test_error"] {
        let (s, a) = (get("SGD", "true", q)?, get("Adam", "true", q)?);
        let sep = (s.end - a.end).abs() > s.end_ci + a.end_ci;
        n_differ += sep as usize;
        differ.push(format!(
            "{q}: SGD {:.4} ± {:.4}, Adam {:.4} ± {:.4}",
            s.end, s.end_ci, a.end, a.end_ci
        ));
    }
    claims.push(Claim {
        claim: "SGD and Adam reach different solutions from the same start".into(),
        measured: format!(
            "final (true) {}; {n_differ} of 3 differ beyond their CIs",
            differ.join("; ")
        ),
        expected: "final ||w||_1, effective support or test error differ beyond the CIs".into(),
        holds: n_differ >= 1,
    });
    let (s_sup, a_sup) = (
        get("SGD", "true", "effective_support")?,
        get("Adam", "true", "effective_support")?,
    );
    let (s_sup_chg, a_sup_chg) = (s_sup.change, a_sup.change);
    claims.push(Claim {
        claim: "Adam's solution is sparser than SGD's (l1/2-type vs l1-type implicit regulariser)".into(),
        measured: format!(
            "final effective support: Adam {:.3} ± {:.3}, SGD {:.3} ± {:.3} (start {:.3}; changes {:+.3} / {:+.3}; teacher {k})",
            a_sup.end, a_sup.end_ci, s_sup.end, s_sup.end_ci, s_sup.start, a_sup_chg, s_sup_chg
        ),
        expected: "Adam's below SGD's beyond the CIs".into(),
        holds: a_sup.end + a_sup.end_ci < s_sup.end - s_sup.end_ci,
    });
    for (opt, paired, _, _) in &runs {
        let stopped = &paired.derived.divergences;
        claims.push(Claim {
            claim: format!("The derived {opt} dynamics is defined along the whole horizon"),
            measured: match stopped.first() {
                None => format!(
                    "all {} derived trajectories reached step {steps}",
                    paired.derived.trajectories
                ),
                Some(d) => format!(
                    "{} of {} stopped; first: {d}",
                    stopped.len(),
                    paired.derived.trajectories
                ),
            },
            expected: "no failure of the derivation (projection, rank decision, Adam fixed point)"
                .into(),
            holds: stopped.is_empty(),
        });
    }
    let tol: f64 = 0.2;
    for (opt, _, gaps, _) in &runs {
        let reg: Vec<&Gap> = gaps
            .iter()
            .filter(|g| g.observable == "trace_hessian" || g.observable == "sqrt_diag_trace")
            .collect();
        let worst = reg.iter().max_by(|a, b| a.relative.total_cmp(&b.relative));
        let floor = reg.iter().map(|g| g.noise_floor).fold(0.0, f64::max);
        if let Some(w) = worst {
            claims.push(Claim {
                claim: format!("True and derived {opt} agree on the regularisers tr H and tr(diag H)^1/2"),
                measured: format!(
                    "largest relative gap {:.3} [{:.3}, {:.3}] ({} at step {}); MC floor {:.3} (all quantities: see the gap table)",
                    w.relative, w.relative_low, w.relative_high, w.observable, w.at_step, floor
                ),
                expected: format!("≤ {tol} (sup-in-time gap relative to the range of the true mean)"),
                holds: w.relative <= tol.max(floor),
            });
        }
    }
    // Which regulariser each optimizer prefers: relative decrease of sqrt-diag over that of tr H.
    let pref = |opt: &str| -> Result<f64> {
        let (t, q) = (
            get(opt, "true", "trace_hessian")?,
            get(opt, "true", "sqrt_diag_trace")?,
        );
        Ok((q.change / q.start) / (t.change / t.start))
    };
    let (ps, pa) = (pref("SGD")?, pref("Adam")?);
    claims.push(Claim {
        claim: "Relative to tr H, Adam reduces tr(diag H)^1/2 more than SGD does".into(),
        measured: format!(
            "(relative decrease of tr(diag H)^1/2) / (relative decrease of tr H), true: Adam {pa:.2}, SGD {ps:.2}"
        ),
        expected: "Adam's ratio above SGD's".into(),
        holds: pa > ps,
    });
    // Body.
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Diagonal network `f(x) = sum_j (u_j^2 - v_j^2) x_j` on a sparse regression: n = {n} \
         samples, p = {p} features (d = {} parameters), teacher `w* = 1` on the first {k} \
         features, {} test samples; start at the minimum-l2 interpolator (floor 0.01); label noise \
         sigma = {sigma}. SGD: eta = {sgd_lr}. Adam: eta = {adam_lr}, beta1 = 0.9, beta2 = \
         {adam_beta2}, eps = 1e-8 (fixed point for v to relative tolerance 1e-7). {steps} steps, {trajectories} true trajectories per optimizer \
         (started in the normal equilibrium, observed at their projection onto the manifold); \
         the derived dynamics is deterministic here (label noise has no tangent part on the \
         manifold). Bands: 95% CI of the mean (inner) and 5-95% quantiles of the trajectories \
         (outer, true only).\n",
        2 * p,
        500
    );
    for (_, name, label) in RECORDED {
        let _ = writeln!(body, "![{label}]({link}/{name}.svg)\n");
    }
    body += "| optimizer | dynamics | quantity | start | end (95% CI) | change (95% CI) |\n|---|---|---|---:|---|---|\n";
    for f in &all {
        let _ = writeln!(
            body,
            "| {} | {} | {} | {:.4} | {:.4} ± {:.4} | {:+.4} ± {:.4} |",
            f.optimizer, f.dynamics, f.quantity, f.start, f.end, f.end_ci, f.change, f.change_ci
        );
    }
    for (opt, paired, gaps, seconds) in &runs {
        let dg = &paired.start.diagnostics;
        let _ = writeln!(
            body,
            "\n**{opt}: true vs derived** ({seconds:.1} s; SDE step h = {} optimizer steps; eta lambda_max = {:.3} \
             (bound {:.3}); separation ratio {:.3e}{}). Overlays in `{link}/{}/`.\n",
            paired.h,
            dg.lr_lambda_max,
            dg.stability_bound,
            dg.separation_ratio,
            dg.tau_x_over_tau_v
                .map_or(String::new(), |t| format!("; tau_x/tau_v = {t:.3}")),
            opt.to_lowercase()
        );
        body += "| quantity | relative gap (95% CI) | at step | MC noise floor |\n|---|---|---:|---:|\n";
        for g in gaps {
            let _ = writeln!(
                body,
                "| {} | {:.3} [{:.3}, {:.3}] | {} | {:.3} |",
                g.observable, g.relative, g.relative_low, g.relative_high, g.at_step, g.noise_floor
            );
        }
        for w in &paired.start.warnings {
            let _ = writeln!(body, "\n- warning at the start: {w}");
        }
        let div = paired.truth.divergences.len();
        if div > 0 {
            let _ = writeln!(body, "\n- {div} true trajectories diverged");
        }
        for d in &paired.derived.divergences {
            let _ = writeln!(body, "\n- derived dynamics stopped: {d}");
        }
    }
    Ok(StudyReport {
        title: "Which flatness each optimizer seeks".into(),
        body,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny scale: SGD's final tr H is below its start, Adam's final tr(diag H)^{1/2} below its
    /// start (true ensembles, beyond the 95% interval), SGD's and Adam's final ||w||_1 differ
    /// by more than 1% of SGD's, and every claim holds but two known limits (see below).
    #[test]
    fn tiny_flatness_study_shows_the_effects() {
        let dir = std::env::temp_dir().join(format!(
            "quasistatic-flatness-study-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let t0 = std::time::Instant::now();
        let rep = run(Scale::Tiny, &dir, "flatness").unwrap();
        eprintln!("flatness study (tiny): {:.2} s", t0.elapsed().as_secs_f64());
        let json = std::fs::read_to_string(dir.join("finals.json")).unwrap();
        let all: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        let get = |opt: &str, q: &str, field: &str| {
            all.iter()
                .find(|f| f["optimizer"] == opt && f["dynamics"] == "true" && f["quantity"] == q)
                .and_then(|f| f[field].as_f64())
                .unwrap()
        };
        assert!(
            get("SGD", "trace_hessian", "change") + get("SGD", "trace_hessian", "change_ci") < 0.0
        );
        assert!(
            get("Adam", "sqrt_diag_trace", "change") + get("Adam", "sqrt_diag_trace", "change_ci")
                < 0.0
        );
        let (s, a) = (
            get("SGD", "weight_l1", "end"),
            get("Adam", "weight_l1", "end"),
        );
        assert!((s - a).abs() > 0.01 * s, "final ||w||_1: SGD {s}, Adam {a}");
        // Every claim holds except, possibly, two that the report states as measured:
        // "Adam's solution is sparser" (at these horizons Adam first shrinks the balanced
        // (u, v) pairs of unused features, |u| + |v| at fixed w, and has barely moved w), and
        // "true and derived Adam agree" (here tau_x ~ 500 steps and the drift time ~ 8500 steps
        // leave no room for a quasistatic v: with tau_v = 1e4 the true v lags, docs/theory.md
        // section 9).
        let known_limits =
            |c: &&Claim| c.claim.contains("sparser") || c.claim.contains("derived Adam agree");
        for c in rep.claims.iter().filter(|c| !known_limits(c)) {
            assert!(c.holds, "claim not supported: {} ({})", c.claim, c.measured);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
