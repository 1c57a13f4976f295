//! Derived vs true dynamics, side by side (docs/theory.md section 8).
//!
//! [`compare`] runs, from the same manifold point `phi0 = Phi(start)`:
//! - the true optimizer, each trajectory started in the normal equilibrium around `phi0`
//!   (`theta_0 = phi0 + u`, `u ~ N(0, S_exact(phi0))`; momentum buffers and Adam's moments start
//!   at zero, as in a library);
//! - the derived manifold SDE ([`quasistatic::sde`]) with the drift and the factor of the
//!   tangent noise of [`quasistatic::derive::coefficients()`] re-evaluated at every integrator
//!   step, proposals projected back with Newton steps ([`DerivedDynamics`]);
//!
//! records the same observables at the same optimizer steps, and reports the gap between the
//! ensemble means with Monte-Carlo intervals, the cost of both (gradient evaluations and wall
//! time) and a verdict. [`eta_sweep`] repeats this over learning rates at a fixed horizon in
//! slow time `t = eta^2 k` and fits the slope of `log gap` against `log eta`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compare::{gap, log_log_slope, write_comparison, Gap};
use crate::output::{write_atomic, write_ensemble, RunMeta};
use crate::plot::{band_plot, Series};
use quasistatic::config::{Built, Config};
use quasistatic::derive::{derive_with_coefficients, AdamOptions, Derivation};
use quasistatic::error::{Error, Result};
use quasistatic::manifold::projection::project;
use quasistatic::model::Model;
use quasistatic::noise::{psd_sqrt, NoiseModel};
use quasistatic::observe::Observable;
use quasistatic::optim::{AnyOptimizer, Schedule};
use quasistatic::sde::{run_sde, SdeSpec};
use quasistatic::simulate::{run_ensemble, EnsembleResult, EnsembleSpec, ObservationMap};
use std::sync::Arc;

pub use quasistatic::sde::DerivedDynamics;

/// What a comparison measured.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Learning rate.
    pub eta: f64,
    /// Horizon in optimizer steps.
    pub steps: u64,
    /// Optimizer steps per SDE step.
    pub h: u64,
    /// Trajectories of the true ensemble.
    pub trajectories: usize,
    /// Trajectories of the derived ensemble (2 when it is deterministic).
    pub derived_trajectories: usize,
    /// Gap per compared observable.
    pub gaps: Vec<Gap>,
    /// The diffusion check: gap of the variance growth per compared observable (see
    /// [`crate::diffusion`]). Reported beside the verdict, which is on the means.
    pub variance_gaps: Vec<crate::diffusion::VarianceGap>,
    /// Largest relative gap over the compared observables.
    pub max_relative_gap: f64,
    /// Largest Monte-Carlo noise floor over the compared observables.
    pub max_noise_floor: f64,
    /// Whether the largest relative gap is within `tolerance` (or the noise floor).
    pub agrees: bool,
    /// The tolerance used.
    pub tolerance: f64,
    /// Gradient evaluations of the true ensemble.
    pub true_gradient_evaluations: u64,
    /// Gradient-evaluation equivalents of the derived ensemble.
    pub derived_gradient_evaluations: u64,
    /// Wall time of the true optimizer (s): the true ensemble's wall time less its time
    /// projecting recorded points for observation, estimated as
    /// `observation_cpu_seconds / min(threads, trajectories)` (the projection is how the
    /// comparison observes the truth, not a cost of the optimizer).
    pub true_seconds: f64,
    /// CPU seconds (summed over threads) spent projecting the true ensemble's recorded points
    /// onto the manifold, excluded from `true_seconds`.
    pub true_observation_cpu_seconds: f64,
    /// Wall time of the derived ensemble (s).
    pub derived_seconds: f64,
    /// Diverged trajectories (true, derived).
    pub divergences: (usize, usize),
    /// Diagnostics at the start point.
    pub separation_ratio: f64,
    /// `lr lambda_max` and its stability bound at the start.
    pub stability: (f64, f64),
    /// Warnings of the derivation at the start.
    pub warnings: Vec<String>,
}

/// Observables compared between the true and the derived ensembles: everything recorded but
/// the loss and the distance to the manifold (the derived dynamics lives on the manifold).
/// Custom observables are compared like the built-in ones.
pub fn compared(observables: &[Observable]) -> Vec<Observable> {
    observables
        .iter()
        .filter(|o| {
            !matches!(
                o,
                Observable::Loss | Observable::DistanceToManifold | Observable::GradOutputSq
            )
        })
        .cloned()
        .collect()
}

/// Largest divisor of `every` that is at most `target` (at least 1).
fn step_size(every: u64, target: u64) -> u64 {
    (1..=target.clamp(1, every))
        .rev()
        .find(|h| every.is_multiple_of(*h))
        .unwrap_or(1)
}

/// What to run in [`paired_runs`].
#[derive(Clone, Debug)]
pub struct PairedSpec {
    /// Horizon in optimizer steps.
    pub steps: u64,
    /// Record every this many optimizer steps.
    pub record_every: u64,
    /// True trajectories (the derived ensemble uses 2 when it is deterministic).
    pub trajectories: usize,
    /// Master seed.
    pub seed: u64,
    /// Observables recorded in both ensembles.
    pub observables: Vec<Observable>,
    /// Optimizer steps per SDE step (`None`: about 1/50 of the steps to drift a unit
    /// distance, a divisor of `record_every`).
    pub h: Option<u64>,
    /// Options of Adam's fixed-point iteration for `v` (`None`: the defaults).
    pub adam: Option<AdamOptions>,
    /// A true trajectory whose loss exceeds this has diverged.
    pub max_loss: f64,
    /// Progress bar for the true ensemble (drawn only on a terminal).
    pub progress: bool,
}

/// A true ensemble and the derived dynamics run from the same manifold point.
pub struct Paired {
    /// The derivation at the start point (diagnostics, preconditioner, drift).
    pub start: Derivation,
    /// The true optimizer, started in the normal equilibrium, observed at `Phi(theta)`.
    pub truth: EnsembleResult,
    /// The derived manifold dynamics.
    pub derived: EnsembleResult,
    /// SDE step used (optimizer steps).
    pub h: u64,
    /// CPU seconds (summed over threads) spent projecting the true ensemble's recorded
    /// points onto the manifold for observation: part of `truth.seconds`, not of the true
    /// optimizer's cost.
    pub observation_cpu_seconds: f64,
}

/// Run the true optimizer and the derived dynamics from the manifold point `Phi(start)` (true
/// trajectories start at `phi + u`, `u ~ N(0, S_exact)`, optimizer state at zero, and are
/// observed at their projection onto the manifold), returning both ensembles without writing
/// files. The SDE step is about 1/50 of the steps to drift a unit distance (first-order Euler
/// error well below the O(eta) error of the leading order), a divisor of `record_every`.
pub fn paired_runs<M: Model + Clone + 'static>(
    model: &M,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    start: &[f64],
    spec: &PairedSpec,
) -> Result<Paired> {
    let mut dynamics = DerivedDynamics::new(model, noise, optimizer);
    if let Some(a) = &spec.adam {
        dynamics.options.adam = a.clone();
    }
    let (at, at_coefficients) =
        derive_with_coefficients(model, noise, optimizer, start, &dynamics.options)?;
    let dynamics = dynamics.near_manifold(at_coefficients.normal_rank());
    let phi0 = at.point.clone();
    let s = at_coefficients.s_exact_matrix();
    let owned = model.clone();
    let popts = dynamics.options.projection.clone();
    let observation_nanos = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::clone(&observation_nanos);
    let espec = EnsembleSpec {
        steps: spec.steps,
        record_every: spec.record_every,
        trajectories: spec.trajectories,
        seed: spec.seed,
        max_loss: spec.max_loss,
        start: phi0.clone(),
        start_factor: Some(psd_sqrt(&s)),
        observables: spec.observables.clone(),
        progress: None,
        // Observe the true iterates at their projection Phi(theta): the derived dynamics
        // lives on the manifold, and a manifold observable of phi + u carries an O(|u|)
        // offset that is not part of the dynamics being compared.
        observe_at: Some(ObservationMap(Arc::new(move |theta: &[f64]| {
            let t = std::time::Instant::now();
            let p = project(&owned, theta, &popts)
                .map(|p| p.point)
                .map_err(|e| format!("projection onto the manifold failed: {e}"));
            let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            counter.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
            p
        }))),
        ..EnsembleSpec::default()
    };
    let mut espec = espec;
    let total = espec.trajectories as u64 * espec.steps;
    let truth = crate::progress::with_bar(spec.progress, total, |bar| {
        espec.progress = bar;
        run_ensemble(model, noise, optimizer, &espec)
    });
    let unit = at.diagnostics.drift_unit_steps;
    let target = spec.h.unwrap_or_else(|| {
        if unit.is_finite() {
            (unit / 50.0).floor().max(1.0) as u64
        } else {
            spec.record_every
        }
    });
    let h = step_size(spec.record_every, target);
    // Deterministic when the tangent noise moves y by less than 1e-3 of the drift over the
    // horizon (label noise on an interpolating manifold: Q = 0 up to rounding).
    let drift = at.drift_per_step.iter().map(|x| x * x).sum::<f64>().sqrt();
    let steps = spec.steps as f64;
    let deterministic = (at.tangent_noise.trace_per_step * steps).sqrt() <= 1e-3 * drift * steps;
    let derived = run_sde(
        model,
        &dynamics,
        &SdeSpec {
            steps: spec.steps,
            h,
            record_every: spec.record_every,
            trajectories: if deterministic { 2 } else { spec.trajectories },
            seed: spec.seed,
            start: phi0,
            observables: spec.observables.clone(),
        },
    );
    let observation_cpu_seconds =
        observation_nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 * 1e-9;
    Ok(Paired {
        start: at,
        truth,
        derived,
        h,
        observation_cpu_seconds,
    })
}

/// Compare true and derived dynamics for a built configuration; writes `dir/true`,
/// `dir/derived`, overlays, `gaps.md` and returns the measurements. `h = None` picks the SDE
/// step automatically: about 1/200 of the steps to drift a unit distance, a divisor of
/// `record_every`.
pub fn compare_built(
    built: &Built,
    config_toml: &str,
    title: &str,
    dir: &Path,
    h: Option<u64>,
    tolerance: f64,
    progress: bool,
) -> Result<Comparison> {
    quasistatic::with_model!(&built.model, m => compare_model(m, built, config_toml, title, dir, h, tolerance, progress))
}

/// The true and the derived ensembles of `built` from the manifold point of its start, and
/// their comparison (gaps of every compared observable, cost, diagnostics), writing nothing:
/// what [`compare_built`] writes and the closeness study renders itself.
pub fn measure_comparison<M: Model + Clone + 'static>(
    model: &M,
    built: &Built,
    h: Option<u64>,
    tolerance: f64,
    progress: bool,
) -> Result<(Comparison, EnsembleResult, EnsembleResult)> {
    if !matches!(built.optimizer.schedule(), Schedule::Constant(_)) {
        return Err(Error::invalid(
            "optimizer.schedule",
            built.optimizer.schedule(),
            "a constant learning rate: the derived dynamics is for a fixed eta",
        ));
    }
    let observables = compared(&built.spec.observables);
    if observables.is_empty() {
        return Err(Error::invalid(
            "observables",
            "only loss / distance_to_manifold / grad_output_sq",
            "at least one manifold observable (e.g. y0, trace_hessian, sharpness, weight_l1)",
        ));
    }
    let spec = &built.spec;
    let Paired {
        start,
        truth,
        derived,
        h,
        observation_cpu_seconds,
    } = paired_runs(
        model,
        &built.noise,
        &built.optimizer,
        &spec.start,
        &PairedSpec {
            steps: spec.steps,
            record_every: spec.record_every,
            trajectories: spec.trajectories,
            seed: spec.seed,
            observables,
            h,
            adam: built.adam_options.clone(),
            max_loss: spec.max_loss,
            progress,
        },
    )?;
    let gaps = truth
        .observables
        .iter()
        .filter(|name| derived.observable_index(name).is_some())
        .map(|name| gap(&truth, &derived, name))
        .collect::<Result<Vec<_>>>()?;
    // Observables without 4 valid trajectories on both sides have no variance to compare.
    let variance_gaps = gaps
        .iter()
        .filter_map(|g| crate::diffusion::variance_gap(&truth, &derived, &g.observable).ok())
        .collect();
    let max_relative_gap = gaps.iter().map(|g| g.relative).fold(0.0, f64::max);
    let max_noise_floor = gaps.iter().map(|g| g.noise_floor).fold(0.0, f64::max);
    let comparison = Comparison {
        eta: built.optimizer.schedule().base(),
        steps: spec.steps,
        h,
        trajectories: spec.trajectories,
        derived_trajectories: derived.trajectories,
        agrees: max_relative_gap <= tolerance.max(max_noise_floor),
        tolerance,
        gaps,
        variance_gaps,
        max_relative_gap,
        max_noise_floor,
        true_gradient_evaluations: truth.gradient_evaluations,
        derived_gradient_evaluations: derived.gradient_evaluations,
        true_seconds: {
            let workers = rayon::current_num_threads().min(truth.trajectories).max(1);
            (truth.seconds - observation_cpu_seconds / workers as f64).max(0.0)
        },
        true_observation_cpu_seconds: observation_cpu_seconds,
        derived_seconds: derived.seconds,
        divergences: (truth.divergences.len(), derived.divergences.len()),
        separation_ratio: start.diagnostics.separation_ratio,
        stability: (
            start.diagnostics.lr_lambda_max,
            start.diagnostics.stability_bound,
        ),
        warnings: start.warnings.clone(),
    };
    Ok((comparison, truth, derived))
}

#[allow(clippy::too_many_arguments)]
fn compare_model<M: Model + Clone + 'static>(
    model: &M,
    built: &Built,
    config_toml: &str,
    title: &str,
    dir: &Path,
    h: Option<u64>,
    tolerance: f64,
    progress: bool,
) -> Result<Comparison> {
    let (c, truth, derived) = measure_comparison(model, built, h, tolerance, progress)?;
    let meta = |what: &str| RunMeta {
        title: format!("{title} ({what})"),
        config_toml: config_toml.to_string(),
        description: vec![
            ("dynamics".into(), what.into()),
            ("SDE step h".into(), c.h.to_string()),
        ],
        save_trajectories: false,
    };
    write_ensemble(&dir.join("true"), &truth, &meta("true optimizer"))?;
    write_ensemble(
        &dir.join("derived"),
        &derived,
        &meta("derived manifold dynamics"),
    )?;
    let names: Vec<String> = c.gaps.iter().map(|g| g.observable.clone()).collect();
    let keep = |r: &EnsembleResult| subset(r, &names);
    write_comparison(
        dir,
        title,
        ("true", &keep(&truth)),
        ("derived", &keep(&derived)),
        1.0,
        "optimizer step",
    )?;
    write_atomic(
        &dir.join("comparison.json"),
        serde_json::to_string_pretty(&c)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write_atomic(
        &dir.join("report.md"),
        comparison_markdown(title, &c).as_bytes(),
    )?;
    Ok(c)
}

/// Keep only the named observables of an ensemble.
fn subset(r: &EnsembleResult, names: &[String]) -> EnsembleResult {
    let idx: Vec<usize> = names.iter().filter_map(|n| r.observable_index(n)).collect();
    let (nc, no) = (r.steps.len(), r.observables.len());
    let mut values = Vec::with_capacity(r.trajectories * nc * idx.len());
    for j in 0..r.trajectories {
        for c in 0..nc {
            for &o in &idx {
                values.push(r.values[(j * nc + c) * no + o]);
            }
        }
    }
    EnsembleResult {
        observables: idx.iter().map(|&o| r.observables[o].clone()).collect(),
        values,
        ..r.clone()
    }
}

/// The verdict line of a comparison.
pub fn verdict(c: &Comparison) -> String {
    format!(
        "{}: largest relative gap {:.3} (Monte-Carlo floor {:.3}, tolerance {:.3}) over {} observables",
        if c.agrees { "AGREES" } else { "DIFFERS" },
        c.max_relative_gap,
        c.max_noise_floor,
        c.tolerance,
        c.gaps.len()
    )
}

/// The report of one comparison (`report.md` of a comparison folder).
pub fn comparison_markdown(title: &str, c: &Comparison) -> String {
    let mut md = format!(
        "# {title}: true vs derived dynamics\n\n**{}**\n\n",
        verdict(c)
    );
    let _ = writeln!(
        md,
        "eta = {}, {} steps, {} true and {} derived trajectories, SDE step h = {} optimizer steps; \
         eta lambda_max = {:.3} (bound {:.3}); separation ratio {:.3e}.\n",
        c.eta, c.steps, c.trajectories, c.derived_trajectories, c.h, c.stability.0, c.stability.1, c.separation_ratio
    );
    md += "| | gradient evaluations | wall time (s) |\n|---|---:|---:|\n";
    let _ = writeln!(
        md,
        "| true optimizer | {} | {:.3} |",
        c.true_gradient_evaluations, c.true_seconds
    );
    let _ = writeln!(
        md,
        "| derived dynamics | {} | {:.3} |\n",
        c.derived_gradient_evaluations, c.derived_seconds
    );
    let _ = writeln!(
        md,
        "The true optimizer's wall time excludes projecting its recorded points onto the manifold for observation \
         ({:.3} CPU-seconds over all threads).\n",
        c.true_observation_cpu_seconds
    );
    md += "Gap = sup over time of |mean true - mean derived|, relative to the range of the true mean.\n\n";
    md +=
        "| observable | relative gap (95% CI) | at step | MC noise floor |\n|---|---|---:|---:|\n";
    for g in &c.gaps {
        let _ = writeln!(
            md,
            "| {} | {:.3} [{:.3}, {:.3}] | {} | {:.3} |",
            g.observable, g.relative, g.relative_low, g.relative_high, g.at_step, g.noise_floor
        );
    }
    md += "\n";
    if !c.variance_gaps.is_empty() {
        md += "Diffusion: gap = sup over time of |variance growth true - variance growth derived| \
               (growth from step 0), relative to the largest true growth (95% CI from the fourth \
               moments).";
        if c.derived_trajectories <= 2 {
            md += " The derived dynamics is deterministic here (no tangent noise), so its growth is 0.";
        }
        md += "\n\n| observable | relative gap (95% CI) | at step | MC noise floor | final growth true | final growth derived |\n|---|---|---:|---:|---:|---:|\n";
        for v in &c.variance_gaps {
            let _ = writeln!(
                md,
                "| {} | {:.3} [{:.3}, {:.3}] | {} | {:.3} | {:.4e} | {:.4e} |",
                v.observable,
                v.relative,
                v.relative_low,
                v.relative_high,
                v.at_step,
                v.noise_floor,
                v.final_growth_a,
                v.final_growth_b
            );
        }
        md += "\n";
    }
    for g in &c.gaps {
        let _ = writeln!(md, "![{0}](overlay_{0}.svg)\n", g.observable);
    }
    for w in &c.warnings {
        let _ = writeln!(md, "- warning: {w}");
    }
    md
}

/// Scale a configuration to learning rate `eta` at fixed slow-time horizon `eta0^2 steps0`,
/// keeping the number of records; Adam's `1 - beta2` and RMSProp's `1 - alpha` (given or
/// default) scale with `eta^2` (docs/theory.md section 9) so they stay quasistatic.
pub fn scaled_config(base: &Config, eta0: f64, eta: f64) -> Config {
    let mut c = base.clone();
    let k = eta0 / eta;
    let records = (base.steps / base.record_every).max(1);
    c.steps = ((base.steps as f64) * k * k).round() as u64;
    c.record_every = (c.steps / records).max(1);
    c.steps = c.record_every * records;
    c.optimizer.set_lr(eta);
    let r = (eta / eta0).powi(2);
    let second_moment_decay = c.optimizer.get_mut().second_moment_decay();
    if let Some(decay) = second_moment_decay {
        *decay = 1.0 - (1.0 - *decay) * r;
    }
    c
}

/// `dir/sweep.svg`: the largest relative gap of each comparison (with its 95% interval)
/// against eta, log-log, and the fitted line; returns the fitted slope and its standard error.
pub fn write_sweep_plot(dir: &Path, comparisons: &[Comparison]) -> Result<(f64, f64)> {
    let etas: Vec<f64> = comparisons.iter().map(|c| c.eta).collect();
    let gaps: Vec<f64> = comparisons.iter().map(|c| c.max_relative_gap).collect();
    let (slope, intercept, slope_se) = log_log_slope(&etas, &gaps);
    let lx: Vec<f64> = etas.iter().map(|e| e.log10()).collect();
    let series = vec![
        Series {
            label: "max relative gap (95% CI)".into(),
            x: lx.clone(),
            mean: gaps.iter().map(|g| g.log10()).collect(),
            lower: comparisons
                .iter()
                .map(|c| {
                    c.gaps
                        .iter()
                        .map(|g| g.relative_low)
                        .fold(0.0, f64::max)
                        .max(1e-300)
                        .log10()
                })
                .collect(),
            upper: comparisons
                .iter()
                .map(|c| {
                    c.gaps
                        .iter()
                        .map(|g| g.relative_high)
                        .fold(0.0, f64::max)
                        .log10()
                })
                .collect(),
            outer_lower: None,
            outer_upper: None,
        },
        Series {
            label: format!("fit: slope {slope:.2} +- {:.2}", slope_se),
            x: lx,
            mean: etas
                .iter()
                .map(|e| (intercept + slope * e.ln()) / std::f64::consts::LN_10)
                .collect(),
            lower: etas
                .iter()
                .map(|e| (intercept + slope * e.ln()) / std::f64::consts::LN_10)
                .collect(),
            upper: etas
                .iter()
                .map(|e| (intercept + slope * e.ln()) / std::f64::consts::LN_10)
                .collect(),
            outer_lower: None,
            outer_upper: None,
        },
    ];
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    band_plot(
        &dir.join("sweep.svg"),
        "gap between true and derived dynamics",
        "log10 eta",
        "log10 relative gap",
        &series,
    )?;
    Ok((slope, slope_se))
}

/// Result of an eta sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Sweep {
    /// One comparison per learning rate (descending).
    pub comparisons: Vec<Comparison>,
    /// Fitted slope of `log(max relative gap)` against `log eta`.
    pub slope: f64,
    /// Its standard error (NaN with fewer than 3 rates).
    pub slope_se: f64,
}

/// Compare at `eta0 * f` for each factor `f` (time in slow time), write `dir/eta_<eta>/...`,
/// a log-log plot of the gap against eta with the fitted slope, and `dir/sweep.md`.
pub fn eta_sweep(
    config: &Config,
    dir: &Path,
    factors: &[f64],
    tolerance: f64,
    progress: bool,
) -> Result<Sweep> {
    let eta0 = config.optimizer.lr();
    let mut comparisons = Vec::new();
    for &f in factors {
        let eta = eta0 * f;
        let cfg = scaled_config(config, eta0, eta);
        let built = cfg.build()?;
        let sub = dir.join(format!("eta_{eta:.3e}"));
        let title = format!(
            "{} at eta {eta:.3e}",
            config.title.clone().unwrap_or_else(|| "comparison".into())
        );
        comparisons.push(compare_built(
            &built,
            &cfg.to_toml(),
            &title,
            &sub,
            None,
            tolerance,
            progress,
        )?);
    }
    let (slope, slope_se) = write_sweep_plot(dir, &comparisons)?;
    let sweep = Sweep {
        comparisons,
        slope,
        slope_se,
    };
    let mut md = format!(
        "# Learning-rate sweep\n\nHorizon fixed in slow time `eta^2 k`. Fitted slope of log gap vs log eta: **{slope:.2} +- {slope_se:.2}** (1 expected: the leading order has an O(eta) error).\n\n| eta | steps | max relative gap | noise floor | verdict |\n|---:|---:|---:|---:|---|\n"
    );
    for c in &sweep.comparisons {
        let _ = writeln!(
            md,
            "| {:.3e} | {} | {:.4} | {:.4} | {} |",
            c.eta,
            c.steps,
            c.max_relative_gap,
            c.max_noise_floor,
            if c.agrees { "agrees" } else { "differs" }
        );
    }
    md += "\n![sweep](sweep.svg)\n";
    write_atomic(&dir.join("sweep.md"), md.as_bytes())?;
    write_atomic(
        &dir.join("sweep.json"),
        serde_json::to_string_pretty(&sweep)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(sweep)
}

/// Convenience: compare from a config file's contents into `dir`.
pub fn compare(
    config: &Config,
    dir: &Path,
    h: Option<u64>,
    tolerance: f64,
    progress: bool,
) -> Result<(Comparison, PathBuf)> {
    let built = config.build()?;
    let title = config.title.clone().unwrap_or_else(|| "comparison".into());
    let c = compare_built(
        &built,
        &config.to_toml(),
        &title,
        dir,
        h,
        tolerance,
        progress,
    )?;
    Ok((c, dir.join("report.md")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;
    use quasistatic::config::OptimizerConfig;
    use quasistatic::derive::derive;
    use quasistatic::derive::DeriveOptions;
    use quasistatic::model::ProductModel;
    use quasistatic::optim::Sgd;
    use quasistatic::sde::ManifoldDynamics;

    fn config(optimizer: &str) -> Config {
        let text = format!(
            "steps = 100\nrecord_every = 10\n[model]\nkind = \"valley\"\n[noise]\nkind = \"label\"\n\
             [optimizer]\n{optimizer}\nlr = 0.02\n"
        );
        Config::from_toml(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn scaled_config_keeps_the_horizon_and_scales_the_second_moment_rate() {
        let half = scaled_config(&config("kind = \"adam\""), 0.02, 0.01);
        assert_eq!((half.steps, half.record_every), (400, 40));
        assert_eq!(half.optimizer.lr(), 0.01);
        // Defaults scale like given values: 1 - beta2 = 0.001 / 4.
        match &half.optimizer {
            OptimizerConfig::Adam(a) => assert!((1.0 - a.beta2 - 0.00025).abs() < 1e-15),
            other => panic!("{other:?}"),
        }
        let rms = scaled_config(&config("kind = \"rmsprop\""), 0.02, 0.01);
        match &rms.optimizer {
            OptimizerConfig::RmsProp(o) => assert!((1.0 - o.alpha - 0.0025).abs() < 1e-15),
            other => panic!("{other:?}"),
        }
        let sgd = config("kind = \"heavy_ball\"");
        let mut expected = sgd.clone();
        expected.optimizer.set_lr(0.01);
        assert_eq!(
            scaled_config(&sgd, 0.02, 0.01).optimizer,
            expected.optimizer
        );
    }

    /// The product model `theta_1 theta_2 = 1` (a curved manifold) with a fixed noise that has
    /// tangent, normal and cross blocks, SGD at eta = 0.05, at the projection of (2.2, 0.6).
    fn product_case() -> (ProductModel, NoiseModel, AnyOptimizer, Derivation) {
        let model = ProductModel::scalar(2, 1.0);
        let noise = NoiseModel::fixed(DMatrix::from_row_slice(2, 2, &[0.2, 0.15, 0.15, 0.2]));
        let sgd = AnyOptimizer::Sgd(Sgd {
            lr: Schedule::Constant(0.05),
        });
        let options = DeriveOptions {
            matrices_up_to: usize::MAX,
            ..DeriveOptions::default()
        };
        let report = derive(&model, &noise, &sgd, &[2.2, 0.6], &options).unwrap();
        (model, noise, sgd, report)
    }

    /// The integrator's coefficients are the derivation's at the same manifold point: the
    /// drift bit for bit, and a factor whose square is the reported `Q` (1e-12 of `tr Q`).
    #[test]
    fn derived_dynamics_steps_with_the_derivation_coefficients() {
        let (model, noise, sgd, report) = product_case();
        let dynamics = DerivedDynamics::new(&model, &noise, &sgd).near_manifold(1);
        let c = dynamics.coefficients(&report.point).unwrap();
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&c.drift), bits(&report.drift_per_step));
        let q = report.tangent_noise.matrix_per_step.as_ref().unwrap();
        let q = DMatrix::from_fn(2, 2, |i, j| q[i][j]);
        let trace = report.tangent_noise.trace_per_step;
        assert!(trace > 0.0);
        let err = (&c.noise_factor * c.noise_factor.transpose() - q)
            .abs()
            .max();
        assert!(err < 1e-12 * trace, "{err}");
    }

    /// A proposal `phi + h b + sqrt(h) F z` (h = 10 optimizer steps: 0.08 from `phi`, 1.4e-3
    /// off the curved manifold in `theta_1 theta_2 - 1`) projected with the near-manifold
    /// options (Newton on the normal space, no flow) lands on the manifold
    /// (`|theta_1 theta_2 - 1| < 1e-12`) within 1e-6 of the full gradient-flow projection
    /// (measured 2.6e-7: the `O(|v|^4)` of `ProjectionOptions::near_manifold`), without
    /// falling back to it.
    #[test]
    fn proposals_are_projected_like_the_full_projection() {
        let (model, noise, sgd, report) = product_case();
        let near = DerivedDynamics::new(&model, &noise, &sgd).near_manifold(1);
        let full = DerivedDynamics::new(&model, &noise, &sgd);
        let phi = &report.point;
        let c = near.coefficients(phi).unwrap();
        let h = 10.0f64;
        let z = [1.3, -0.7];
        let theta: Vec<f64> = (0..2)
            .map(|i| {
                phi[i]
                    + h * c.drift[i]
                    + h.sqrt() * (c.noise_factor[(i, 0)] * z[0] + c.noise_factor[(i, 1)] * z[1])
            })
            .collect();
        let step = ((theta[0] - phi[0]).powi(2) + (theta[1] - phi[1]).powi(2)).sqrt();
        assert!(step > 0.01, "{step}");
        assert!((theta[0] * theta[1] - 1.0).abs() > 1e-4);
        let a = near.project(&theta).unwrap();
        let b = full.project(&theta).unwrap();
        let direct = project(&model, &theta, near.near.as_ref().unwrap()).unwrap();
        assert_eq!(direct.point, a, "no fallback");
        assert_eq!(direct.flow_steps, 0);
        assert!((a[0] * a[1] - 1.0).abs() < 1e-12);
        let gap = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        assert!(gap < 1e-6, "{gap}");
    }
}
