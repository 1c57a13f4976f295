//! The momentum study's files and section:
//!
//! - `collapse/k_<k>/` and `break/k_<k>/`: every run as `quasistatic simulate` writes it
//!   (`config.toml`, `summary.csv`, `summary.json`, plots, `report.md`);
//!   `quasistatic simulate collapse/k_2/config.toml --out DIR` reproduces its `summary.csv`
//!   byte for byte;
//! - `collapse.csv`, `break.csv`: the numbers of the section's tables;
//! - `momentum.json`: everything measured (the data the claims are computed from);
//! - `collapse_trace_hessian.svg`, `break_loss_level.svg`: the plots.

use std::fmt::Write as _;
use std::path::Path;

use super::claims::{bound_k, rule_break, stable};
use super::measure::SavedRun;
use super::measure::{MomentumData, B0, BETA, ETA0};
use crate::output::{write_atomic, write_ensemble};
use crate::plot::{band_plot, Series};
use crate::studies::Claim;
use quasistatic::error::Result;

/// The folder of a run relative to the study's folder: `collapse/k_<k>` or `break/k_<k>`.
fn run_folder(part: &str, k: usize) -> String {
    format!("{part}/k_{k}")
}

/// Every run of the study with its folder.
fn runs(data: &MomentumData) -> impl Iterator<Item = (String, &SavedRun)> {
    let a = data
        .collapse
        .iter()
        .map(|r| (run_folder("collapse", r.k), &r.run));
    let b = data
        .breaking
        .iter()
        .map(|r| (run_folder("break", r.k), &r.run));
    a.chain(b)
}

/// Every configuration the study saves: `(<part>/k_<k>/config.toml, TOML text)`.
pub fn configs(data: &MomentumData) -> Vec<(String, String)> {
    runs(data)
        .map(|(folder, run)| {
            (
                format!("{folder}/config.toml"),
                run.meta.config_toml.clone(),
            )
        })
        .collect()
}

/// The tables' numbers as CSV: `collapse.csv` and `break.csv` (floats in Rust's shortest
/// round-trip form, so that they compare exactly with a rerun).
fn tables_csv(data: &MomentumData) -> (String, String) {
    let mut a = String::from(
        "k,eta,batch,gap_relative,gap_relative_low,gap_relative_high,gap_noise_floor,initial_trace,final_trace_mean,final_trace_ci,level_mean,level_ci,divergences\n",
    );
    for r in &data.collapse {
        let _ = writeln!(
            a,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.k,
            ETA0 * r.k as f64,
            B0 * r.k,
            r.gap.relative,
            r.gap.relative_low,
            r.gap.relative_high,
            r.gap.noise_floor,
            r.initial_trace,
            r.final_trace.mean,
            r.final_trace.ci,
            r.level.mean,
            r.level.ci,
            r.divergences
        );
    }
    let mut b = String::from(
        "k,eta,batch,k_eta_lambda_max,level_mean,level_ci,exact_prediction,leading_prediction,divergences\n",
    );
    for r in &data.breaking {
        let _ = writeln!(
            b,
            "{},{},{},{},{},{},{},{},{}",
            r.k,
            r.eta,
            r.batch,
            r.k_eta_lambda,
            r.level.mean,
            r.level.ci,
            r.exact,
            r.leading,
            r.divergences
        );
    }
    (a, b)
}

/// Write the study's files (see the module docs) into `dir` and return the section's
/// Markdown.
pub fn render(data: &MomentumData, _claims: &[Claim], dir: &Path, link: &str) -> Result<String> {
    for (folder, run) in runs(data) {
        write_ensemble(&dir.join(folder), &run.result, &run.meta)?;
    }
    let (collapse_csv, break_csv) = tables_csv(data);
    write_atomic(&dir.join("collapse.csv"), collapse_csv.as_bytes())?;
    write_atomic(&dir.join("break.csv"), break_csv.as_bytes())?;
    let json = serde_json::to_string_pretty(data).map_err(|e| {
        quasistatic::Error::Numerical(format!("cannot serialise the momentum study: {e}"))
    })?;
    write_atomic(&dir.join("momentum.json"), json.as_bytes())?;
    let (w, l_min) = (data.least_squares_weight, data.l_min);
    let mut body = format!(
        "Heavy ball (beta {BETA}) with mini-batch noise on `f = theta_1 theta_2 x`, n = {} noisy samples \
         (`L_min = {l_min:.4}`, least-squares weight {w:.4}); base eta = {ETA0}, B = {B0}; eta and B scaled together by k.\n\n\
         **A. Collapse.** Start ({:.3}, {:.3}); `tr H` against the rescaled time k x step.\n\n",
        data.n_data, data.start[0], data.start[1]
    );
    let series: Vec<Series> = data
        .collapse
        .iter()
        .map(|r| {
            r.trace.series(&format!(
                "k = {} (eta {:.3}, B {})",
                r.k,
                ETA0 * r.k as f64,
                B0 * r.k
            ))
        })
        .collect();
    band_plot(
        &dir.join("collapse_trace_hessian.svg"),
        "scaling rule: tr H vs rescaled time",
        "k x optimizer step",
        "tr H",
        &series,
    )?;
    let _ = writeln!(body, "![collapse]({link}/collapse_trace_hessian.svg)\n");
    body += "| k | rescaled-time gap to k = 1 (relative, 95% CI) | final tr H (95% CI) | final loss - L_min (95% CI) | diverged |\n|---:|---|---|---|---:|\n";
    for r in &data.collapse {
        let g = &r.gap;
        let _ = writeln!(
            body,
            "| {} | {:.3} [{:.3}, {:.3}] | {:.4} ± {:.4} | {:.3e} ± {:.1e} | {} |",
            r.k,
            g.relative,
            g.relative_low,
            g.relative_high,
            r.final_trace.mean,
            r.final_trace.ci,
            r.level.mean,
            r.level.ci,
            r.divergences
        );
    }
    let _ = writeln!(
        body,
        "\n**B. Where the rule breaks.** From the flattest point ({:.3}, {:.3}), {} steps per k, loss level averaged over \
         the second half. The rule predicts a constant loss excess; the exact discrete equilibrium `S` (from `derive`, including \
         the finite-population factor) predicts `1/2 tr(H S_exact)`.\n",
        data.flattest[0], data.flattest[1], data.window
    );
    body += "| k | eta | B | k eta lambda_max (bound 2(1+beta) = 3.8) | measured loss - L_min (95% CI) | exact prediction | leading-order (rule) prediction | diverged |\n|---:|---:|---:|---:|---|---:|---:|---:|\n";
    for b in &data.breaking {
        let _ = writeln!(
            body,
            "| {} | {:.3} | {} | {:.3} | {} | {} | {:.3e} | {} |",
            b.k,
            b.eta,
            b.batch,
            b.k_eta_lambda,
            if b.divergences == 0 {
                format!("{:.3e} ± {:.1e}", b.level.mean, b.level.ci)
            } else {
                "diverged".into()
            },
            match &b.derive_error {
                None => format!("{:.3e}", b.exact),
                Some(e) => format!(
                    "no equilibrium ({})",
                    e.chars().take(60).collect::<String>()
                ),
            },
            b.leading,
            b.divergences
        );
    }
    let stable: Vec<_> = stable(data).collect();
    let xs: Vec<f64> = stable.iter().map(|b| b.k as f64).collect();
    let line = |label: &str, y: Vec<f64>| Series {
        label: label.into(),
        x: xs.clone(),
        mean: y.clone(),
        lower: y.clone(),
        upper: y,
        outer_lower: None,
        outer_upper: None,
    };
    let measured: Vec<f64> = stable.iter().map(|b| b.level.mean).collect();
    band_plot(
        &dir.join("break_loss_level.svg"),
        "scaling rule: stationary loss excess at the flattest point",
        "k (eta = k 0.002, B = k 2)",
        "E L - L_min",
        &[
            Series {
                lower: stable.iter().map(|b| b.level.mean - b.level.ci).collect(),
                upper: stable.iter().map(|b| b.level.mean + b.level.ci).collect(),
                ..line("measured (95% CI)", measured)
            },
            line("exact discrete S", stable.iter().map(|b| b.exact).collect()),
            line(
                "leading order (rule)",
                stable.iter().map(|b| b.leading).collect(),
            ),
        ],
    )?;
    let _ = writeln!(body, "\n![break]({link}/break_loss_level.svg)\n");
    let _ = writeln!(
        body,
        "The rule's loss level first departs by more than 10% at k = {}; the stability bound of the exact equilibrium \
         is reached at k = {:.0} (`k eta lambda_max = 3.8`).\n",
        rule_break(data).map_or("(not within the range)".into(), |k| k.to_string()),
        bound_k(data)
    );
    let _ = writeln!(
        body,
        "Files: every run in `{link}/collapse/k_<k>/` and `{link}/break/k_<k>/` as `quasistatic simulate` writes it \
         (`quasistatic simulate {link}/collapse/k_2/config.toml --out DIR` reproduces its `summary.csv`); the tables' \
         numbers in `collapse.csv` and `break.csv`; everything measured in `momentum.json`.\n"
    );
    Ok(body)
}
