//! The main job: built-in runs and the report that collects them.
//!
//! `quasistatic reproduce` runs each study, writes its own folder (config, CSVs, JSON,
//! plots, report) and a top-level `report.md` with a summary table: claim, measured number
//! with its 95% interval, prediction, verdict.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;
use crate::output::write_atomic;
use crate::run;
use crate::simulate::EnsembleResult;

/// Size of the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Small ensembles: the whole job takes minutes on two cores.
    Quick,
    /// Publication-size ensembles.
    Full,
}

struct Study {
    name: &'static str,
    toml: &'static str,
    /// (trajectories, steps) at quick and full scale.
    quick: (usize, u64),
    full: (usize, u64),
}

const STUDIES: &[Study] = &[
    Study {
        name: "valley_sgd",
        toml: include_str!("../../../examples/valley_sgd.toml"),
        quick: (256, 4000),
        full: (4096, 4000),
    },
    Study {
        name: "valley_heavy_ball",
        toml: include_str!("studies/valley_heavy_ball.toml"),
        quick: (256, 4000),
        full: (4096, 4000),
    },
    Study {
        name: "valley_rotated_adam",
        toml: include_str!("../../../examples/valley_rotated_adam.toml"),
        quick: (64, 20000),
        full: (1024, 20000),
    },
    Study {
        name: "product_label_sgd",
        toml: include_str!("../../../examples/product_label.toml"),
        quick: (64, 20000),
        full: (1024, 200000),
    },
    Study {
        name: "diagonal_sparse_sgd",
        toml: include_str!("../../../examples/diagonal_sparse.toml"),
        quick: (8, 20000),
        full: (64, 100000),
    },
];

/// One line of the summary table.
#[derive(Clone, Debug)]
pub struct Claim {
    /// What is claimed.
    pub claim: String,
    /// Measured value.
    pub measured: f64,
    /// Half-width of its 95% confidence interval.
    pub half_width: f64,
    /// Predicted value.
    pub predicted: f64,
}

impl Claim {
    /// Whether the prediction lies in the measured interval widened by `rel` relative slack
    /// (the leading-order theory has an `O(eta)` bias).
    pub fn holds(&self, rel: f64) -> bool {
        (self.measured - self.predicted).abs() <= self.half_width + rel * self.predicted.abs()
    }
}

/// Mean and 95% half-width of observable `name` at the last checkpoint.
fn final_mean(r: &EnsembleResult, name: &str) -> Option<(f64, f64)> {
    let o = r.observable_index(name)?;
    let v = r.column(r.steps.len() - 1, o);
    let n = v.len() as f64;
    if v.len() < 2 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    Some((mean, 1.96 * (var / n).sqrt()))
}

/// THEORY.md section 7: on the valley `a(y) = 1 + y^2` with label noise `sigma`, the drift per
/// step of heavy ball (`beta = 0` is SGD) with the exact discrete normal variance is
/// `b_y = -(eta / (1 - beta)) (1/2) a'(y) S`, `S = eta^2 s^2 (1 + beta) / ((1 - beta) q (2 (1 + beta) - q))`,
/// `q = eta a(y)`, `s^2 = sigma^2 a(y)`. Integrate `dy/dk = b_y` over `steps` (RK4, unit steps).
pub fn valley_prediction(eta: f64, beta: f64, sigma: f64, y0: f64, steps: u64) -> f64 {
    let b = |y: f64| {
        let a = 1.0 + y * y;
        let q = eta * a;
        let s = eta * eta * sigma * sigma * a * (1.0 + beta)
            / ((1.0 - beta) * q * (2.0 * (1.0 + beta) - q));
        -(eta / (1.0 - beta)) * 0.5 * (2.0 * y) * s
    };
    let mut y = y0;
    for _ in 0..steps {
        let k1 = b(y);
        let k2 = b(y + 0.5 * k1);
        let k3 = b(y + 0.5 * k2);
        let k4 = b(y + k3);
        y += (k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0;
    }
    y
}

/// Run every study at `scale` into `out` and write `out/report.md`; returns its path.
pub fn reproduce(scale: Scale, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out)
        .map_err(|e| crate::Error::io(format!("cannot create {}", out.display()), e))?;
    let mut md = String::from("# quasistatic: reproduced results\n\n");
    let _ = writeln!(md, "Scale: `{scale:?}`. Each study has its own folder with the resolved config, tidy CSVs, a JSON summary, plots and a report.\n");
    let mut claims = Vec::new();
    let mut sections = String::new();
    for s in STUDIES {
        let mut cfg = Config::from_toml(s.toml, Path::new(s.name))?;
        let (n, steps) = if scale == Scale::Quick {
            s.quick
        } else {
            s.full
        };
        cfg.trajectories = n;
        cfg.steps = steps;
        cfg.record_every = cfg.record_every.min(steps);
        let dir = out.join(s.name);
        eprintln!("running {} ({n} trajectories x {steps} steps)", s.name);
        let outcome = run::simulate(&cfg, &dir, true)?;
        let r = &outcome.result;
        let _ = writeln!(
            sections,
            "## {}\n\n{} — {} trajectories x {} steps, {:.1} s, {} diverged. [report]({}/report.md)\n",
            s.name,
            cfg.title.clone().unwrap_or_default(),
            r.trajectories,
            steps,
            r.seconds,
            r.divergences.len(),
            s.name
        );
        for name in &r.observables {
            let _ = writeln!(sections, "![{name}]({}/plot_{name}.svg)\n", s.name);
        }
        if s.name == "valley_sgd" || s.name == "valley_heavy_ball" {
            let built = cfg.build()?;
            let eta = built.optimizer.schedule().base();
            let beta = match &built.optimizer {
                crate::optim::AnyOptimizer::HeavyBall(h) => h.beta,
                _ => 0.0,
            };
            let sigma = match built.noise {
                crate::noise::NoiseModel::Label { sigma, .. } => sigma,
                _ => 0.0,
            };
            if let Some((m, hw)) = final_mean(r, "y0") {
                claims.push(Claim {
                    claim: format!(
                        "{}: mean y after {steps} steps follows the THEORY.md drift",
                        s.name
                    ),
                    measured: m,
                    half_width: hw,
                    predicted: valley_prediction(eta, beta, sigma, built.spec.start[1], steps),
                });
            }
        }
    }
    md += "## Summary\n\n| claim | measured (95% CI) | predicted | verdict |\n|---|---|---|---|\n";
    for c in &claims {
        let _ = writeln!(
            md,
            "| {} | {:.4} ± {:.4} | {:.4} | {} |",
            c.claim,
            c.measured,
            c.half_width,
            c.predicted,
            if c.holds(0.1) {
                "agrees (within CI + 10% leading-order slack)"
            } else {
                "DISAGREES"
            }
        );
    }
    md += "\n";
    md += &sections;
    let path = out.join("report.md");
    write_atomic(&path, md.as_bytes())?;
    Ok(path)
}
