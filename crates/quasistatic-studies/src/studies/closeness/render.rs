//! The closeness study's files and section.
//!
//! Per case `<case>/`: for each learning rate `eta_<eta>/` the configuration `config.toml`
//! (`quasistatic compare config.toml --out DIR` reruns the comparison and reproduces its
//! ensembles and gaps exactly), the true and derived ensembles (`true/`, `derived/`), overlays
//! and gap tables, `comparison.json` and `report.md`; then the sweep's `sweep.svg`, `sweep.md`
//! and `sweep.json`.

use std::fmt::Write as _;
use std::path::Path;

use super::claims::{median, resolved_slopes, smallest_eta, SmallestEta};
use super::measure::{ClosenessData, EtaRun, SweepData};
use crate::compare::write_comparison;
use crate::output::{write_atomic, write_ensemble, RunMeta};
use crate::studies::Claim;
use crate::validate::{comparison_markdown, write_sweep_plot, Comparison};
use quasistatic::error::Result;

/// Write every case's files into `dir` and return the section's Markdown.
pub fn render(data: &ClosenessData, _claims: &[Claim], dir: &Path, link: &str) -> Result<String> {
    let tolerance = data.tolerance;
    let mut body = String::from(
        "Each case compares the true optimizer (ensemble started in its normal equilibrium, observed at its projection \
         onto the manifold) with the derived manifold SDE from the same point, at eta, eta/2, eta/4 with the horizon fixed \
         in slow time. Gap = sup over time of the difference of ensemble means, relative to the range of the true mean, \
         maximised over the manifold observables (manifold coordinates, tr H, sharpness, norms, test error). \
         The leading-order theory has an O(eta) error, so the gap should fall with slope about 1.\n\n",
    );
    let _ = writeln!(
        body,
        "| case | {} | slope (± s.e.) | smallest-eta verdict |",
        data.factors
            .iter()
            .map(|f| format!("gap at eta x {f}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(body, "|---|{}---:|---|", "---:|".repeat(data.factors.len()));
    let mut failures = Vec::new();
    let (mut agree_small, mut unresolved) = (0, 0);
    for case in &data.cases {
        let name = case.case.name();
        match &case.outcome {
            Ok(sweep) => {
                write_sweep(&dir.join(&name), sweep)?;
                let gaps: Vec<String> = sweep
                    .sweep
                    .comparisons
                    .iter()
                    .map(|c| format!("{:.3} (floor {:.3})", c.max_relative_gap, c.max_noise_floor))
                    .collect();
                let state = sweep
                    .sweep
                    .comparisons
                    .last()
                    .map(|last| smallest_eta(last, tolerance));
                let verdict = match state {
                    Some(SmallestEta::Agrees) => "agrees",
                    Some(SmallestEta::Differs) => "differs",
                    Some(SmallestEta::Unresolved) => "unresolved (MC floor above tolerance)",
                    None => "no comparison",
                };
                agree_small += usize::from(state == Some(SmallestEta::Agrees));
                unresolved += usize::from(state == Some(SmallestEta::Unresolved));
                let _ = writeln!(
                    body,
                    "| [{name}]({link}/{name}/sweep.md) | {} | {:.2} ± {:.2} | {} |",
                    gaps.join(" | "),
                    sweep.sweep.slope,
                    sweep.sweep.slope_se,
                    verdict
                );
            }
            Err(e) => {
                let _ = writeln!(body, "| {name} | failed: {e} |");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    let slopes = resolved_slopes(data);
    let _ = writeln!(
        body,
        "\n{agree_small} of {} cases agree within {tolerance} at the smallest eta; {unresolved} are unresolved (their \
         Monte-Carlo floor is above the tolerance: more trajectories are needed to tell). \
         Median fitted slope over the {} cases whose gaps are above the Monte-Carlo floor: {:.2}.\n",
        data.cases.len(),
        slopes.len(),
        median(&slopes)
    );
    for f in failures {
        let _ = writeln!(body, "- failed: {f}");
    }
    Ok(body)
}

/// The folder of one comparison of a sweep, relative to the case's folder.
fn eta_folder(c: &Comparison) -> String {
    format!("eta_{:.3e}", c.eta)
}

/// The header of a saved comparison configuration.
fn compare_header(run: &EtaRun) -> String {
    format!(
        "# {}: `quasistatic compare config.toml --out DIR` reruns this comparison (true optimizer \
         started in its normal equilibrium around the manifold point of [start] and observed at its \
         projection, against the derived SDE) and reproduces true/, derived/ and comparison.json.\n",
        run.title
    )
}

/// Every configuration the study saves: `(<case>/eta_<eta>/config.toml, TOML text)`.
pub fn configs(data: &ClosenessData) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for case in &data.cases {
        if let Ok(sweep) = &case.outcome {
            for (c, run) in sweep.sweep.comparisons.iter().zip(&sweep.runs) {
                out.push((
                    format!("{}/{}/config.toml", case.case.name(), eta_folder(c)),
                    format!("{}{}", compare_header(run), run.config_toml),
                ));
            }
        }
    }
    out
}

/// A sweep's files in `dir`: each comparison's in `eta_<eta>/`, then the sweep's.
fn write_sweep(dir: &Path, sweep: &SweepData) -> Result<()> {
    for (c, run) in sweep.sweep.comparisons.iter().zip(&sweep.runs) {
        write_eta(&dir.join(eta_folder(c)), c, run)?;
    }
    let comparisons = &sweep.sweep.comparisons;
    let (slope, slope_se) = (sweep.sweep.slope, sweep.sweep.slope_se);
    write_sweep_plot(dir, comparisons)?;
    let mut md = format!(
        "# Learning-rate sweep\n\nHorizon fixed in slow time `eta^2 k`. Fitted slope of log gap vs log eta: **{slope:.2} +- {slope_se:.2}** (1 expected: the leading order has an O(eta) error).\n\n| eta | steps | max relative gap | noise floor | verdict |\n|---:|---:|---:|---:|---|\n"
    );
    for c in comparisons {
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
        serde_json::to_string_pretty(&sweep.sweep)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(())
}

/// One comparison's files in `dir`.
fn write_eta(dir: &Path, c: &Comparison, run: &EtaRun) -> Result<()> {
    // The ensembles' folders carry the comparison's configuration: `simulate` on it would
    // start the optimizer at [start] itself, not in the equilibrium around its manifold point,
    // and observe it unprojected.
    let config = format!("{}{}", compare_header(run), run.config_toml);
    std::fs::create_dir_all(dir)
        .map_err(|e| quasistatic::Error::io(format!("cannot create {}", dir.display()), e))?;
    write_atomic(&dir.join("config.toml"), config.as_bytes())?;
    let meta = |what: &str| {
        RunMeta {
        title: format!("{} ({what})", run.title),
        config_toml: format!(
            "# The {what} half of a comparison: rerun it with `quasistatic compare ../config.toml`; \
             `quasistatic simulate` on this file starts the optimizer at [start] itself and does \
             not reproduce these numbers.\n{}",
            run.config_toml
        ),
        description: vec![
            ("dynamics".into(), what.into()),
            ("SDE step h".into(), c.h.to_string()),
        ],
        save_trajectories: false,
    }
    };
    write_ensemble(&dir.join("true"), &run.truth, &meta("true optimizer"))?;
    write_ensemble(
        &dir.join("derived"),
        &run.derived,
        &meta("derived manifold dynamics"),
    )?;
    write_comparison(
        dir,
        &run.title,
        ("true", &run.truth),
        ("derived", &run.derived),
        1.0,
        "optimizer step",
    )?;
    write_atomic(
        &dir.join("comparison.json"),
        serde_json::to_string_pretty(c)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write_atomic(
        &dir.join("report.md"),
        comparison_markdown(&run.title, c).as_bytes(),
    )
}
