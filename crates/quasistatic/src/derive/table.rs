//! Plain-text rendering of a [`Derivation`] for the terminal.

use std::fmt::Write;

use super::Derivation;

fn vec_text(x: &[f64], max: usize) -> String {
    let shown: Vec<String> = x.iter().take(max).map(|v| format!("{v:.6e}")).collect();
    if x.len() > max {
        format!("[{}, ... ({} entries)]", shown.join(", "), x.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}

impl Derivation {
    /// A readable plain-text table of the derivation (units in the row labels).
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "  {k:<38} {v}");
        };
        row(
            "model / noise / optimizer",
            format!("{} / {} / {}", self.model, self.noise, self.optimizer),
        );
        row("start", vec_text(&self.start, 6));
        row("manifold point phi", vec_text(&self.point, 6));
        let p = &self.projection;
        row(
            "projection",
            format!(
                "|phi - start| = {:.3e}, |grad L| = {:.3e}, L - L_min = {}, {} flow + {} {:?} steps",
                p.distance,
                p.gradient_norm,
                p.loss_excess.map_or("?".into(), |x| format!("{x:.3e}")),
                p.flow_steps,
                p.newton_steps,
                p.finisher
            ),
        );
        let g = &self.geometry;
        row(
            "geometry",
            format!(
                "{} path, d = {}, normal rank {}, manifold dim {}, gap {:.3e}",
                g.path.name(),
                g.dim,
                g.normal_rank,
                g.manifold_dim,
                g.gap
            ),
        );
        row("normal curvatures of H", vec_text(&g.curvatures, 6));
        if let Some(c) = &g.preconditioned_curvatures {
            row("normal curvatures of D^1/2 H D^1/2", vec_text(c, 6));
        }
        row("tr H", format!("{:.6e}", g.trace_hessian));
        let e = &self.equilibrium;
        row("tr S (exact, discrete)", format!("{:.6e}", e.exact.trace));
        row("tr S (leading order)", format!("{:.6e}", e.leading.trace));
        row(
            "|S_exact - S_lead| / |S_lead|",
            format!("{:.3e}", e.relative_difference),
        );
        if let Some(pc) = &self.preconditioner {
            row(
                "Adam v (fixed point)",
                format!(
                    "{} iterations, residual {:.1e}: {}",
                    pc.iterations,
                    pc.residual,
                    vec_text(&pc.v, 6)
                ),
            );
            row(
                "eps-dominated coordinates",
                format!("{}", pc.eps_dominated.len()),
            );
        }
        row(
            "drift per step (exact S)",
            vec_text(&self.drift_per_step, 6),
        );
        row(
            "drift per step (leading order)",
            vec_text(&self.drift_per_step_leading, 6),
        );
        row(
            "  of which cross term",
            vec_text(&self.drift_cross_per_step, 6),
        );
        row(
            "drift per unit slow time (eta^2 k)",
            vec_text(&self.drift_per_slow_time, 6),
        );
        if let Some(y) = &self.drift_manifold_coordinates {
            row("drift of manifold coordinates / step", vec_text(y, 6));
        }
        row(
            "tr Q (tangent noise)",
            format!(
                "{:.6e} per step, {:.6e} per slow time",
                self.tangent_noise.trace_per_step, self.tangent_noise.trace_per_slow_time
            ),
        );
        for r in &self.regularisers {
            let what = if r.preconditioned {
                "preconditioned descent on"
            } else {
                "descent on"
            };
            let v = match (r.cosine, r.coefficient) {
                (Some(c), Some(k)) => format!(
                    "cosine {c:+.6}, drift = {k:.4e} x direction (value {:.6e})",
                    r.value
                ),
                _ => format!("n/a ({})", r.note.clone().unwrap_or_default()),
            };
            row(&format!("{what} {}", r.regulariser.label()), v);
        }
        let dg = &self.diagnostics;
        row(
            "eta, eta_eff",
            format!("{:.4e}, {:.4e}", dg.eta, dg.eta_eff),
        );
        row(
            "lr * lambda_max vs bound",
            format!("{:.4e} vs {:.4}", dg.lr_lambda_max, dg.stability_bound),
        );
        row(
            "normal relaxation (steps)",
            format!("{:.4e}", dg.normal_relaxation_steps),
        );
        row(
            "steps to drift a unit distance",
            format!("{:.4e}", dg.drift_unit_steps),
        );
        row(
            "separation ratio (small is good)",
            format!("{:.4e}", dg.separation_ratio),
        );
        if let (Some(tv), Some(r)) = (dg.tau_v, dg.tau_x_over_tau_v) {
            row(
                "tau_v = 1/(1-beta2), tau_x/tau_v",
                format!("{tv:.4e}, {r:.4e}"),
            );
        }
        row("time", format!("{:.3} s", self.seconds));
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        s
    }
}
