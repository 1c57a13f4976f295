//! The flatness study's files (per optimizer `sgd/`, `adam/` with overlays and gap tables;
//! one plot per quantity; `finals.csv`, `finals.json`) and section.

use std::fmt::Write as _;
use std::path::Path;

use super::measure::{Final, FlatnessData, QUANTITIES};
use crate::compare::write_comparison;
use crate::output::write_atomic;
use crate::plot::{band_plot, ensemble_series};
use crate::studies::Claim;
use quasistatic::error::Result;
use quasistatic::stats::summarize_ensemble;

/// Write the study's files into `dir` and return the section's Markdown.
pub fn render(data: &FlatnessData, _claims: &[Claim], dir: &Path, link: &str) -> Result<String> {
    let setup = &data.setup;
    // True against derived, per optimizer.
    for run in &data.runs {
        let name = run.optimizer.name();
        write_comparison(
            &dir.join(name.to_lowercase()),
            &format!("Diagonal network, {name}"),
            ("true", &run.record.truth),
            ("derived", &run.record.derived),
            1.0,
            "optimizer step",
        )?;
    }
    // The configurations that rerun them (`quasistatic compare <optimizer>/config.toml`).
    for (name, toml) in &data.configs {
        write_atomic(
            &dir.join(name.to_lowercase()).join("config.toml"),
            toml.as_bytes(),
        )?;
    }

    // Plots: each quantity over time, SGD vs Adam, true vs derived.
    for (name, label) in QUANTITIES {
        let mut series = Vec::new();
        for run in &data.runs {
            for (what, r) in [
                ("true", &run.record.truth),
                ("derived", &run.record.derived),
            ] {
                let s = summarize_ensemble(r);
                if let Some(o) = r.observable_index(name) {
                    let mut ser = ensemble_series(r, &s, o, &format!("{} {what}", run.optimizer));
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
    let all: Vec<&Final> = data.runs.iter().flat_map(|r| &r.finals).collect();
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

    // Body.
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Diagonal network `f(x) = sum_j (u_j^2 - v_j^2) x_j` on a sparse regression: n = {} \
         samples, p = {} features (d = {} parameters), teacher `w* = 1` on the first {} \
         features, {} test samples; start at the minimum-l2 interpolator (floor 0.01); label noise \
         sigma = {}. SGD: eta = {}. Adam: eta = {}, beta1 = 0.9, beta2 = \
         {}, eps = 1e-8 (fixed point for v to relative tolerance 1e-7). {} steps, {} true trajectories per optimizer \
         (started in the normal equilibrium, observed at their projection onto the manifold); \
         the derived dynamics is deterministic here (label noise has no tangent part on the \
         manifold). Bands: 95% CI of the mean (inner) and 5-95% quantiles of the trajectories \
         (outer, true only). `tr(diag H)^1/2` and the effective support are recorded as custom \
         observables (`sqrt_diag_trace`, `effective_support`) by both dynamics.\n",
        setup.n,
        setup.p,
        2 * setup.p,
        setup.k,
        setup.n_test,
        setup.sigma,
        setup.sgd_lr,
        setup.adam_lr,
        setup.adam_beta2,
        setup.steps,
        setup.trajectories
    );
    for (name, label) in QUANTITIES {
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
    for run in &data.runs {
        let rec = &run.record;
        let dg = &rec.diagnostics;
        let _ = writeln!(
            body,
            "\n**{}: true vs derived** ({:.1} s; SDE step h = {} optimizer steps; eta lambda_max = {:.3} \
             (bound {:.3}); separation ratio {:.3e}{}). Overlays in `{link}/{}/`.\n",
            run.optimizer,
            rec.seconds,
            rec.h,
            dg.lr_lambda_max,
            dg.stability_bound,
            dg.separation_ratio,
            dg.tau_x_over_tau_v
                .map_or(String::new(), |t| format!("; tau_x/tau_v = {t:.3}")),
            run.optimizer.name().to_lowercase()
        );
        body += "| quantity | relative gap (95% CI) | at step | MC noise floor |\n|---|---|---:|---:|\n";
        for g in &run.gaps {
            let _ = writeln!(
                body,
                "| {} | {:.3} [{:.3}, {:.3}] | {} | {:.3} |",
                g.observable, g.relative, g.relative_low, g.relative_high, g.at_step, g.noise_floor
            );
        }
        for w in &rec.warnings {
            let _ = writeln!(body, "\n- warning at the start: {w}");
        }
        let div = rec.truth.divergences.len();
        if div > 0 {
            let _ = writeln!(body, "\n- {div} true trajectories diverged");
        }
        for d in &run.derived_stopped {
            let _ = writeln!(body, "\n- derived dynamics stopped: {d}");
        }
    }
    Ok(body)
}
