//! Study 2: the momentum scaling rule (docs/theory.md section 4).
//!
//! Heavy ball (beta 0.9) with mini-batch noise on a depth-2 product model fitted to noisy
//! labels it cannot fit (`L_min > 0`, so mini-batch sampling drives the exploration), with
//! `n` large so that the finite-population factor `(n - B) / (n - 1)` stays close to 1.
//! With `Sigma = Sigma_1 / B`, the normal equilibrium is `S ~ eta / ((1 - beta) B)` and the drift
//! per step `b ~ eta^2 / ((1 - beta)^2 B)`: scaling `eta -> k eta`, `B -> k B` keeps `S` and
//! multiplies the drift per step by `k`.
//!
//! Part A (collapse): `k = 1, 2, 4, 8` from the same unbalanced start; curves of `tr H` (at the
//! iterate) against `k x step` collapse, and the destination (final `tr H`, final loss level)
//! is the same within confidence intervals.
//!
//! Part B (break): at the flattest point (the destination, where the drift vanishes) the
//! stationary loss excess `E L - L_min = 1/2 tr(H S)` is measured for growing `k` up to and
//! beyond the stability bound `k eta lambda_max = 2 (1 + beta)`. The rule predicts a constant;
//! the exact discrete equilibrium predicts the growth and the break.

use std::fmt::Write as _;
use std::path::Path;

use super::{mean_ci, Claim, Scale, StudyReport};
use crate::compare::gap;
use crate::plot::{band_plot, ensemble_series, Series};
use quasistatic::config::Config;
use quasistatic::derive::{derive, DeriveOptions};
use quasistatic::error::{Error, Result};
use quasistatic::model::{AnyModel, Model};
use quasistatic::simulate::{run_ensemble, EnsembleResult};
use quasistatic::stats::summarize_ensemble;

const ETA0: f64 = 0.002;
const B0: usize = 2;
const BETA: f64 = 0.9;

fn config(
    n_data: usize,
    k: usize,
    steps: u64,
    record_every: u64,
    trajectories: usize,
    start: [f64; 2],
) -> Result<Config> {
    let text = format!(
        "title = \"heavy ball, k = {k}\"\nseed = 23\nsteps = {steps}\ntrajectories = {trajectories}\nrecord_every = {record_every}\n\
         max_loss = 1e6\nobservables = [\"loss\", \"trace_hessian\"]\n\
         [model]\nkind = \"product\"\n[data]\nkind = \"synthetic\"\nn = {n_data}\ndim = 1\nteacher = \"linear\"\n\
         teacher_weights = [1.0]\nlabel_noise = 0.5\nseed = 3\n[noise]\nkind = \"minibatch\"\nbatch = {}\n\
         [optimizer]\nkind = \"heavy_ball\"\nlr = {}\nbeta = {BETA}\n[start]\ntheta = [{}, {}]\n",
        B0 * k,
        ETA0 * k as f64,
        start[0],
        start[1]
    );
    Config::from_toml(&text, Path::new("momentum.toml"))
}

fn least_squares(model: &AnyModel) -> Result<(f64, f64)> {
    match model {
        AnyModel::Product(p) => Ok((p.least_squares_weight(), p.loss_min().unwrap_or(0.0))),
        _ => Err(Error::Numerical(
            "the momentum study needs the product model".into(),
        )),
    }
}

/// Run the study (see the module docs).
pub fn run(scale: Scale, dir: &Path, link: &str) -> Result<StudyReport> {
    let n_data = scale.pick(2048, 16384, 16384);
    let trajectories = scale.pick(16, 128, 512);
    // Divisible by records x 8 so that every k records at the same rescaled times.
    let horizon: u64 = scale.pick(7_680, 48_000, 96_000);
    let records = 24u64;
    let probe = config(n_data, 1, 1, 1, 1, [1.0, 1.0])?.build()?;
    let (w, l_min) = least_squares(&probe.model)?;
    let start = [3.0, w / 3.0];
    let mut body = format!(
        "Heavy ball (beta {BETA}) with mini-batch noise on `f = theta_1 theta_2 x`, n = {n_data} noisy samples \
         (`L_min = {l_min:.4}`, least-squares weight {w:.4}); base eta = {ETA0}, B = {B0}; eta and B scaled together by k.\n\n\
         **A. Collapse.** Start ({:.3}, {:.3}); `tr H` against the rescaled time k x step.\n\n",
        start[0], start[1]
    );
    // Part A: collapse.
    let ks = [1usize, 2, 4, 8];
    let mut runs: Vec<(usize, EnsembleResult)> = Vec::new();
    for &k in &ks {
        let every = horizon / (records * k as u64);
        let cfg = config(n_data, k, every * records, every, trajectories, start)?;
        let mut built = cfg.build()?;
        built.spec.progress = None;
        let mut r = quasistatic::with_model!(&built.model, m => run_ensemble(m, &built.noise, &built.optimizer, &built.spec));
        for s in r.steps.iter_mut() {
            *s *= k as u64;
        }
        runs.push((k, r));
    }
    let o = runs[0]
        .1
        .observable_index("trace_hessian")
        .expect("recorded");
    let series: Vec<Series> = runs
        .iter()
        .map(|(k, r)| {
            ensemble_series(
                r,
                &summarize_ensemble(r),
                o,
                &format!("k = {k} (eta {:.3}, B {})", ETA0 * *k as f64, B0 * k),
            )
        })
        .collect();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    band_plot(
        &dir.join("collapse_trace_hessian.svg"),
        "scaling rule: tr H vs rescaled time",
        "k x optimizer step",
        "tr H",
        &series,
    )?;
    let _ = writeln!(body, "![collapse]({link}/collapse_trace_hessian.svg)\n");
    body += "| k | rescaled-time gap to k = 1 (relative, 95% CI) | final tr H (95% CI) | final loss - L_min (95% CI) | diverged |\n|---:|---|---|---|---:|\n";
    let last = |r: &EnsembleResult, name: &str| {
        let i = r.observable_index(name).expect("recorded");
        mean_ci(&r.column(r.steps.len() - 1, i))
    };
    // Loss level: time average over the second half of the records, per trajectory.
    let level = |r: &EnsembleResult| {
        let i = r.observable_index("loss").expect("recorded");
        let c0 = r.steps.len() / 2;
        let per: Vec<f64> = (0..r.trajectories)
            .filter(|&j| r.valid[j] == r.steps.len())
            .map(|j| {
                (c0..r.steps.len())
                    .map(|c| r.get(j, c, i).unwrap_or(f64::NAN) - l_min)
                    .sum::<f64>()
                    / (r.steps.len() - c0) as f64
            })
            .collect();
        mean_ci(&per)
    };
    let (base_tr, base_tr_ci) = last(&runs[0].1, "trace_hessian");
    let (base_lv, base_lv_ci) = level(&runs[0].1);
    let mut max_gap: f64 = 0.0;
    let mut gap_floor: f64 = 0.0;
    let mut same_destination = true;
    let mut initial_tr = 0.0;
    for (k, r) in &runs {
        let g = gap(&runs[0].1, r, "trace_hessian")?;
        let (tr, tr_ci) = last(r, "trace_hessian");
        let (lv, lv_ci) = level(r);
        if *k > 1 {
            max_gap = max_gap.max(g.relative);
            gap_floor = gap_floor.max(g.noise_floor);
            let tol_tr = 1.96 * ((base_tr_ci / 1.96).powi(2) + (tr_ci / 1.96).powi(2)).sqrt();
            let tol_lv = 1.96 * ((base_lv_ci / 1.96).powi(2) + (lv_ci / 1.96).powi(2)).sqrt();
            // Destination: final tr H equal within the CI; loss level equal within the CI or
            // 10% (the rule holds to leading order in eta only).
            same_destination &= (tr - base_tr).abs() <= tol_tr + 0.02 * base_tr.abs();
            same_destination &= (lv - base_lv).abs() <= tol_lv + 0.1 * base_lv.abs();
        } else {
            let i = r.observable_index("trace_hessian").expect("recorded");
            initial_tr = mean_ci(&r.column(0, i)).0;
        }
        let _ =
            writeln!(
            body,
            "| {k} | {:.3} [{:.3}, {:.3}] | {tr:.4} ± {tr_ci:.4} | {lv:.3e} ± {lv_ci:.1e} | {} |",
            g.relative, g.relative_low, g.relative_high, r.divergences.len()
        );
    }
    let mut claims = vec![
        Claim {
            claim: "scaling eta and B by k = 2, 4, 8 collapses tr H(t) in rescaled time k x step".into(),
            measured: format!("largest relative gap {max_gap:.3} (MC floor {gap_floor:.3})"),
            expected: "≤ 0.1 or within the MC floor".into(),
            holds: max_gap <= 0.1_f64.max(gap_floor),
        },
        Claim {
            claim: "the destination is unchanged: final tr H and loss level equal across k".into(),
            measured: format!("k = 1: tr H {base_tr:.4} ± {base_tr_ci:.4}, loss - L_min {base_lv:.3e} ± {base_lv_ci:.1e}"),
            expected: "all k within their 95% CIs (+2% tr H, +10% loss level)".into(),
            holds: same_destination,
        },
        Claim {
            claim: "iterations to reach a given flatness shrink as 1/k".into(),
            measured: format!("tr H falls from {initial_tr:.3} to {base_tr:.3} in {horizon} steps at k = 1 and in {} at k = 8", horizon / 8),
            expected: "same fall in horizon / k steps (collapse)".into(),
            holds: max_gap <= 0.1_f64.max(gap_floor) && base_tr < initial_tr,
        },
    ];
    // Part B: where the rule breaks, at the flattest point.
    let phi_star = [w.abs().sqrt() * w.signum(), w.abs().sqrt()];
    let kb: Vec<usize> = scale.pick(
        vec![1, 64, 256, 512],
        vec![1, 16, 64, 128, 256, 384, 512, 640, 768],
        vec![1, 16, 64, 128, 256, 384, 512, 640, 768, 896],
    );
    let window: u64 = scale.pick(400, 2000, 4000);
    let _ = writeln!(
        body,
        "\n**B. Where the rule breaks.** From the flattest point ({:.3}, {:.3}), {window} steps per k, loss level averaged over \
         the second half. The rule predicts a constant loss excess; the exact discrete equilibrium `S` (from `derive`, including \
         the finite-population factor) predicts `1/2 tr(H S_exact)`.\n",
        phi_star[0], phi_star[1]
    );
    body += "| k | eta | B | k eta lambda_max (bound 2(1+beta) = 3.8) | measured loss - L_min (95% CI) | exact prediction | leading-order (rule) prediction | diverged |\n|---:|---:|---:|---:|---|---:|---:|---:|\n";
    let mut exact_ok = true;
    let mut rule_break: Option<usize> = None;
    let mut first_level = f64::NAN;
    let mut first_ci = f64::NAN;
    let mut bound_k = f64::NAN;
    let mut xs = Vec::new();
    let (mut m_series, mut e_series, mut l_series) = (Vec::new(), Vec::new(), Vec::new());
    let mut m_ci: Vec<f64> = Vec::new();
    for &k in &kb {
        let cfg = config(
            n_data,
            k,
            window,
            (window / 40).max(1),
            trajectories,
            phi_star,
        )?;
        let mut built = cfg.build()?;
        built.spec.progress = None;
        let r = quasistatic::with_model!(&built.model, m => run_ensemble(m, &built.noise, &built.optimizer, &built.spec));
        let (lv, lv_ci) = level(&r);
        let options = DeriveOptions {
            regularisers: false,
            ..DeriveOptions::default()
        };
        let pred = quasistatic::with_model!(&built.model, m => derive(m, &built.noise, &built.optimizer, &phi_star, &options));
        let lambda = probe_lambda(&built)?;
        let klam = ETA0 * k as f64 * lambda;
        if bound_k.is_nan() {
            bound_k = 2.0 * (1.0 + BETA) / (ETA0 * lambda);
        }
        let (exact, lead) = match &pred {
            Ok(p) => (
                0.5 * lambda * p.equilibrium.exact.trace,
                0.5 * lambda * p.equilibrium.leading.trace,
            ),
            Err(_) => (f64::INFINITY, f64::NAN),
        };
        if first_level.is_nan() {
            first_level = lv;
            first_ci = lv_ci;
        }
        // The rule says the level stays at k = 1's; a break is a departure larger than 10% and
        // significant (beyond the combined 95% interval), or a divergence.
        let departs = (lv - first_level).abs()
            > (0.1 * first_level)
                .max(1.96 * ((first_ci / 1.96).powi(2) + (lv_ci / 1.96).powi(2)).sqrt());
        if rule_break.is_none() && (!r.divergences.is_empty() || departs) {
            rule_break = Some(k);
        }
        if r.divergences.is_empty() && exact.is_finite() {
            // The exact equilibrium should predict the measured level within its CI + 10%.
            exact_ok &= (lv - exact).abs() <= lv_ci + 0.1 * exact;
            xs.push(k as f64);
            m_series.push(lv);
            m_ci.push(lv_ci);
            e_series.push(exact);
            l_series.push(lead);
        }
        let _ = writeln!(
            body,
            "| {k} | {:.3} | {} | {klam:.3} | {} | {} | {lead:.3e} | {} |",
            ETA0 * k as f64,
            B0 * k,
            if r.divergences.is_empty() {
                format!("{lv:.3e} ± {lv_ci:.1e}")
            } else {
                "diverged".into()
            },
            match &pred {
                Ok(_) => format!("{exact:.3e}"),
                Err(e) => format!(
                    "no equilibrium ({})",
                    e.to_string().chars().take(60).collect::<String>()
                ),
            },
            r.divergences.len()
        );
    }
    let line = |label: &str, y: &[f64]| Series {
        label: label.into(),
        x: xs.clone(),
        mean: y.to_vec(),
        lower: y.to_vec(),
        upper: y.to_vec(),
        outer_lower: None,
        outer_upper: None,
    };
    band_plot(
        &dir.join("break_loss_level.svg"),
        "scaling rule: stationary loss excess at the flattest point",
        "k (eta = k 0.002, B = k 2)",
        "E L - L_min",
        &[
            Series {
                lower: m_series.iter().zip(&m_ci).map(|(m, c)| m - c).collect(),
                upper: m_series.iter().zip(&m_ci).map(|(m, c)| m + c).collect(),
                ..line("measured (95% CI)", &m_series)
            },
            line("exact discrete S", &e_series),
            line("leading order (rule)", &l_series),
        ],
    )?;
    let _ = writeln!(body, "\n![break]({link}/break_loss_level.svg)\n");
    let _ = writeln!(
        body,
        "The rule's loss level first departs by more than 10% at k = {}; the stability bound of the exact equilibrium \
         is reached at k = {bound_k:.0} (`k eta lambda_max = 3.8`).\n",
        rule_break.map_or("(not within the range)".into(), |k| k.to_string())
    );
    claims.push(Claim {
        claim: "the exact discrete equilibrium predicts the loss level for every stable k".into(),
        measured: format!("k = {:?}", xs),
        expected: "measured within CI + 10% of 1/2 tr(H S_exact)".into(),
        holds: exact_ok,
    });
    claims.push(Claim {
        claim: "the rule breaks before the stability bound k eta lambda_max = 2(1 + beta)".into(),
        measured: format!(
            "first 10% departure at k = {}",
            rule_break.map_or("none".into(), |k| k.to_string())
        ),
        expected: format!("a break at k < {bound_k:.0} (the bound)"),
        holds: rule_break.is_some_and(|k| (k as f64) <= bound_k * 1.05),
    });
    Ok(StudyReport {
        title: "2. Momentum scaling rule".into(),
        body,
        claims,
    })
}

/// `lambda_max` of the Hessian at the flattest point of the built model (closed form for the
/// depth-2 product: `(1/n) sum x_i^2 (theta_1^2 + theta_2^2)` on the manifold).
fn probe_lambda(built: &quasistatic::config::Built) -> Result<f64> {
    let AnyModel::Product(p) = &built.model else {
        return Err(Error::Numerical(
            "the momentum study needs the product model".into(),
        ));
    };
    let w = p.least_squares_weight();
    let phi = [w.abs().sqrt() * w.signum(), w.abs().sqrt()];
    let h = quasistatic::model::derivatives::hessian(p, &phi);
    Ok(h.symmetric_eigen().eigenvalues.max())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny scale (16 trajectories, n = 2048): the collapse and destination claims hold, and
    /// the exact equilibrium predicts the loss level.
    #[test]
    fn tiny_momentum_scaling() {
        let dir = std::env::temp_dir().join(format!("quasistatic-momentum-{}", std::process::id()));
        let rep = run(Scale::Tiny, &dir, "momentum").unwrap();
        for c in &rep.claims[..3] {
            assert!(c.holds, "{}: {}", c.claim, c.measured);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
