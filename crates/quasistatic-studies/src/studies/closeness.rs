//! Study 1: closeness of the derived and the true dynamics (docs/theory.md section 8).
//!
//! For SGD, heavy ball (beta 0.9) and Adam, each under label noise, isotropic noise and
//! mini-batch noise (the latter on models that cannot fit their noisy labels, `L_min > 0`,
//! where it is the driver), on the valley, the product model and the diagonal network: an
//! eta sweep (eta, eta/2, eta/4 at a fixed horizon in slow time `eta^2 k`; Adam's `1 - beta2`
//! scaled with `eta^2`) comparing the true ensemble (started in its normal equilibrium,
//! observed at its projection onto the manifold) with the derived SDE. Reported per case: the
//! largest relative gap of the ensemble means at each eta and the fitted slope of log gap
//! against log eta (1 expected: the leading order has an `O(eta)` error).

use std::fmt::Write as _;
use std::path::Path;

use super::{Claim, Scale, StudyReport};
use crate::validate::eta_sweep;
use quasistatic::config::Config;
use quasistatic::error::Result;

/// One model x noise setting; optimizers are filled in by [`cases`].
struct Setting {
    name: &'static str,
    /// TOML of `[model]`, `[data]`, `[noise]` (and `observables`, `[start]` if needed).
    body: &'static str,
    /// Base learning rates for SGD, heavy ball (beta 0.9) and Adam.
    lrs: [f64; 3],
    /// Base steps (at the base learning rate).
    steps: u64,
    /// Ensemble-size multiplier (isotropic noise diffuses along the manifold about as far as it
    /// drifts, so its mean needs more trajectories to be resolved).
    more: usize,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "valley_label",
        body: "[model]\nkind = \"valley\"\nangle = 30.0\nstart_y = 2.0\n[noise]\nkind = \"label\"\nsigma = 1.0\n",
        lrs: [0.05, 0.005, 0.01],
        steps: 4000,
        more: 1,
    },
    Setting {
        name: "valley_isotropic",
        body: "[model]\nkind = \"valley_nd\"\nnormal_dim = 16\ntangent_dim = 1\nstart_y = 2.0\n\
               [noise]\nkind = \"isotropic\"\nsigma = 0.5\n",
        lrs: [0.05, 0.005, 0.01],
        steps: 2000,
        more: 1,
    },
    Setting {
        name: "product_label",
        body: "[model]\nkind = \"product\"\n[noise]\nkind = \"label\"\nsigma = 0.5\n[start]\ntheta = [3.0, 0.3333333333333333]\n",
        lrs: [0.05, 0.005, 0.02],
        steps: 8000,
        more: 1,
    },
    Setting {
        name: "product_isotropic",
        body: "[model]\nkind = \"product\"\n[noise]\nkind = \"isotropic\"\nsigma = 0.3\n[start]\ntheta = [3.0, 0.3333333333333333]\n",
        lrs: [0.05, 0.005, 0.02],
        steps: 8000,
        more: 2,
    },
    Setting {
        name: "product_minibatch",
        body: "[model]\nkind = \"product\"\n[data]\nkind = \"synthetic\"\nn = 32\ndim = 1\nteacher = \"linear\"\n\
               teacher_weights = [1.0]\nlabel_noise = 0.5\nseed = 3\n[noise]\nkind = \"minibatch\"\nbatch = 2\n\
               [start]\ntheta = [3.0, 0.3]\ngd_steps = 3000\ngd_lr = 0.05\n",
        lrs: [0.05, 0.005, 0.02],
        steps: 8000,
        more: 1,
    },
    Setting {
        name: "diagonal_label",
        body: "[model]\nkind = \"diagonal\"\nfloor = 0.05\n[data]\nkind = \"synthetic\"\nn = 5\nn_test = 200\ndim = 10\n\
               teacher = \"sparse\"\nteacher_k = 2\nseed = 1\n[noise]\nkind = \"label\"\nsigma = 0.5\n",
        lrs: [0.02, 0.002, 0.005],
        steps: 8000,
        more: 1,
    },
    Setting {
        name: "diagonal_isotropic",
        body: "[model]\nkind = \"diagonal\"\nfloor = 0.05\n[data]\nkind = \"synthetic\"\nn = 5\nn_test = 200\ndim = 10\n\
               teacher = \"sparse\"\nteacher_k = 2\nseed = 1\n[noise]\nkind = \"isotropic\"\nsigma = 0.2\n",
        lrs: [0.02, 0.002, 0.005],
        steps: 8000,
        more: 2,
    },
    Setting {
        name: "diagonal_minibatch",
        body: "[model]\nkind = \"diagonal\"\nfloor = 0.05\n[data]\nkind = \"synthetic\"\nn = 24\nn_test = 200\ndim = 4\n\
               teacher = \"sparse\"\nteacher_k = 2\nlabel_noise = 0.5\nseed = 2\n[noise]\nkind = \"minibatch\"\nbatch = 2\n",
        lrs: [0.02, 0.002, 0.005],
        steps: 8000,
        more: 1,
    },
];

/// The configurations of the study at `scale`: `(case name, config)`.
fn cases(scale: Scale) -> Result<Vec<(String, Config)>> {
    let optimizers = [
        ("sgd", "kind = \"sgd\""),
        ("heavy_ball", "kind = \"heavy_ball\"\nbeta = 0.9"),
        ("adam", "kind = \"adam\"\nbeta1 = 0.9\nbeta2 = 0.99"),
    ];
    let (n, steps_factor) = scale.pick((32, 0.25), (128, 1.0), (1024, 1.0));
    let mut out = Vec::new();
    for s in SETTINGS {
        for (k, (oname, opt)) in optimizers.iter().enumerate() {
            let name = format!("{}_{oname}", s.name);
            if scale == Scale::Tiny
                && !matches!(
                    name.as_str(),
                    "valley_label_sgd" | "product_label_adam" | "diagonal_minibatch_heavy_ball"
                )
            {
                continue;
            }
            let steps = ((s.steps as f64 * steps_factor) as u64 / 20).max(1) * 20;
            let text = format!(
                "title = \"{name}\"\nseed = 17\nsteps = {steps}\ntrajectories = {}\nrecord_every = {}\n{}\n[optimizer]\n{opt}\nlr = {}\n",
                n * s.more,
                steps / 20,
                s.body,
                s.lrs[k]
            );
            out.push((name, Config::from_toml(&text, Path::new("closeness.toml"))?));
        }
    }
    Ok(out)
}

/// Run the study (see the module docs).
pub fn run(scale: Scale, dir: &Path, link: &str) -> Result<StudyReport> {
    let factors: &[f64] = if scale == Scale::Tiny {
        &[1.0, 0.5]
    } else {
        &[1.0, 0.5, 0.25]
    };
    let tolerance = 0.1;
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
        factors
            .iter()
            .map(|f| format!("gap at eta x {f}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(body, "|---|{}---:|---|", "---:|".repeat(factors.len()));
    let mut claims = Vec::new();
    let mut failures = Vec::new();
    let mut slopes = Vec::new();
    let mut agree_small = 0;
    let mut unresolved = 0;
    let cases = cases(scale)?;
    let total = cases.len();
    for (name, cfg) in cases {
        let sub = dir.join(&name);
        match eta_sweep(&cfg, &sub, factors, tolerance, false) {
            Ok(sw) => {
                let gaps: Vec<String> = sw
                    .comparisons
                    .iter()
                    .map(|c| format!("{:.3} (floor {:.3})", c.max_relative_gap, c.max_noise_floor))
                    .collect();
                let last = sw.comparisons.last().expect("at least one eta");
                // Resolved: the Monte-Carlo floor is below the tolerance, so "agrees" means
                // something; otherwise the ensemble is too small to tell.
                let conclusive = last.max_noise_floor < tolerance;
                let verdict = match (conclusive, last.agrees) {
                    (true, true) => "agrees",
                    (true, false) => "differs",
                    (false, _) => "unresolved (MC floor above tolerance)",
                };
                if conclusive && last.agrees {
                    agree_small += 1;
                }
                if !conclusive {
                    unresolved += 1;
                }
                let _ = writeln!(
                    body,
                    "| [{name}]({link}/{name}/sweep.md) | {} | {:.2} ± {:.2} | {} |",
                    gaps.join(" | "),
                    sw.slope,
                    sw.slope_se,
                    verdict
                );
                // A gap below the Monte-Carlo floor at every eta cannot show a slope; it
                // supports closeness but not the rate.
                let resolved = sw
                    .comparisons
                    .iter()
                    .all(|c| c.max_relative_gap > c.max_noise_floor);
                if resolved && sw.slope.is_finite() {
                    slopes.push(sw.slope);
                }
                let shrinks =
                    sw.comparisons.first().expect("one").max_relative_gap >= last.max_relative_gap;
                claims.push(Claim {
                    claim: format!("{name}: derived dynamics matches the true one, gap shrinking with eta"),
                    measured: format!(
                        "gap {} → {:.3} (floor {:.3}); slope {:.2} ± {:.2}",
                        format_args!("{:.3}", sw.comparisons[0].max_relative_gap),
                        last.max_relative_gap,
                        last.max_noise_floor,
                        sw.slope,
                        sw.slope_se
                    ),
                    expected: format!("MC floor < {tolerance} and gap ≤ {tolerance} at the smallest eta, non-increasing"),
                    holds: conclusive && last.agrees && (shrinks || !resolved),
                });
            }
            Err(e) => {
                let _ = writeln!(body, "| {name} | failed: {e} |");
                failures.push(format!("{name}: {e}"));
                claims.push(Claim {
                    claim: format!("{name}: derived dynamics matches the true one"),
                    measured: format!("error: {e}"),
                    expected: "a comparison".into(),
                    holds: false,
                });
            }
        }
    }
    slopes.sort_by(f64::total_cmp);
    let median = if slopes.is_empty() {
        f64::NAN
    } else {
        slopes[slopes.len() / 2]
    };
    let _ = writeln!(
        body,
        "\n{agree_small} of {total} cases agree within {tolerance} at the smallest eta; {unresolved} are unresolved (their \
         Monte-Carlo floor is above the tolerance: more trajectories are needed to tell). \
         Median fitted slope over the {} cases whose gaps are above the Monte-Carlo floor: {median:.2}.\n",
        slopes.len()
    );
    claims.push(Claim {
        claim: "gaps fall like eta (median slope over resolved cases)".into(),
        measured: format!("{median:.2} over {} cases", slopes.len()),
        expected: "about 1 (between 0.5 and 2)".into(),
        holds: slopes.is_empty() || (0.5..=2.0).contains(&median),
    });
    for f in failures {
        let _ = writeln!(body, "- failed: {f}");
    }
    Ok(StudyReport {
        title: "1. Closeness: derived vs true dynamics".into(),
        body,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny scale (3 cases, 32 trajectories, 2 learning rates): every comparison runs and
    /// agrees at the smallest eta within 10% (or the Monte-Carlo floor).
    #[test]
    fn tiny_closeness() {
        let dir =
            std::env::temp_dir().join(format!("quasistatic-closeness-{}", std::process::id()));
        let rep = run(Scale::Tiny, &dir, "closeness").unwrap();
        assert_eq!(rep.claims.len(), 4);
        for c in &rep.claims {
            assert!(c.holds, "{}: {}", c.claim, c.measured);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
