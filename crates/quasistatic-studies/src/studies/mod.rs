//! The studies and the one-command report (`quasistatic reproduce`).
//!
//! Every study is three parts, each in its own module under the study's folder:
//!
//! - `measure`: runs the simulations and derivations and returns a typed, serialisable data
//!   struct (no file written, no Markdown);
//! - `claims`: pure functions from that data to the study's [`Claim`]s, each under a typed
//!   [`ClaimId`] with the measured number, its interval, the expectation and a [`Verdict`];
//! - `render`: writes the study's CSV / JSON / SVG files (atomically) and returns its Markdown
//!   section, from the data and the claims.
//!
//! [`StudyParts`] ties them together and [`run_study`] runs them in that order.
//! [`reproduce`] runs every study and writes `report.md` and `report.html` with a summary table
//! of every claim, and `claims.json` with the claims under their ids.
//!
//! Studies (docs/theory.md sections 4, 5, 8):
//! 1. [`closeness`]: the derived dynamics reproduces the true one for SGD, heavy ball and Adam
//!    under label, mini-batch and isotropic noise, with gaps that shrink as eta shrinks;
//! 2. [`momentum`]: the heavy-ball scaling rule (eta and B scaled together) and where it breaks;
//! 3. [`rotation`]: Adam is not rotation invariant, SGD is;
//! 4. [`flatness`]: which flatness SGD and Adam seek on a sparse regression.

pub mod claim;
pub mod closeness;
pub mod flatness;
pub mod momentum;
pub mod rotation;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::output::write_atomic;
use crate::plot::Series;
use quasistatic::error::{Error, Result};
use quasistatic::simulate::EnsembleResult;
use quasistatic::stats::summarize_ensemble;

pub use claim::{find, Claim, ClaimId, Interval, Study, Verdict};

/// Size of the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scale {
    /// Seconds: for the test-suite (directions of effects only).
    Tiny,
    /// Minutes on two cores: the default of `reproduce`.
    Quick,
    /// Publication-size ensembles.
    Full,
}

impl Scale {
    /// Pick the value for this scale.
    pub fn pick<T>(self, tiny: T, quick: T, full: T) -> T {
        match self {
            Scale::Tiny => tiny,
            Scale::Quick => quick,
            Scale::Full => full,
        }
    }
}

/// What a study produced.
#[derive(Clone, Debug, Serialize)]
pub struct StudyReport {
    /// Section title.
    pub title: String,
    /// Markdown body (figures linked relative to the report root).
    pub body: String,
    /// Claims checked.
    pub claims: Vec<Claim>,
}

/// The three parts of a study.
pub trait StudyParts {
    /// Which study.
    const STUDY: Study;
    /// Its section title.
    const TITLE: &'static str;
    /// What [`StudyParts::measure`] returns.
    type Data: Serialize;

    /// Run the simulations and derivations at `scale` (no files, no Markdown).
    fn measure(scale: Scale) -> Result<Self::Data>;

    /// The claims the data supports or not (pure).
    fn claims(data: &Self::Data) -> Vec<Claim>;

    /// Write the study's files into `dir` and return its Markdown section, figures linked
    /// with the prefix `link` (the folder relative to the report root).
    fn render(data: &Self::Data, claims: &[Claim], dir: &Path, link: &str) -> Result<String>;
}

/// Run study `S`: measure at `scale`, check its claims, render into `dir`.
pub fn run_study<S: StudyParts>(scale: Scale, dir: &Path, link: &str) -> Result<StudyReport> {
    let data = S::measure(scale)?;
    let claims = S::claims(&data);
    debug_assert!(
        claims.iter().all(|c| c.id.study() == S::STUDY),
        "a claim of another study"
    );
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let body = S::render(&data, &claims, dir, link)?;
    Ok(StudyReport {
        title: S::TITLE.to_string(),
        body,
        claims,
    })
}

/// Mean and 95% half-width (1.96 standard errors) of a sample.
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

/// The ensemble mean of one observable over time with its 95% band (mean +- 1.96 stderr) and
/// the 5-95% quantiles of the trajectories: what a band plot draws, as data.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Band {
    /// Checkpoint steps.
    pub steps: Vec<f64>,
    /// Mean.
    pub mean: Vec<f64>,
    /// Mean - 1.96 stderr.
    pub lower: Vec<f64>,
    /// Mean + 1.96 stderr.
    pub upper: Vec<f64>,
    /// 5% quantile.
    pub q05: Vec<f64>,
    /// 95% quantile.
    pub q95: Vec<f64>,
}

impl Band {
    /// The band of observable `name` in `r` (`None` if it is not recorded).
    pub fn of(r: &EnsembleResult, name: &str) -> Option<Band> {
        let o = r.observable_index(name)?;
        let s = summarize_ensemble(r);
        let col = |f: &dyn Fn(&quasistatic::stats::Summary) -> f64| -> Vec<f64> {
            s.iter().map(|row| f(&row[o])).collect()
        };
        Some(Band {
            steps: r.steps.iter().map(|&k| k as f64).collect(),
            mean: col(&|x| x.mean),
            lower: col(&|x| x.mean - 1.96 * x.stderr),
            upper: col(&|x| x.mean + 1.96 * x.stderr),
            q05: col(&|x| x.q05),
            q95: col(&|x| x.q95),
        })
    }

    /// The plot series of the band (the same as [`crate::plot::ensemble_series`] of the
    /// ensemble it came from).
    pub fn series(&self, label: &str) -> Series {
        Series {
            label: label.to_string(),
            x: self.steps.clone(),
            mean: self.mean.clone(),
            lower: self.lower.clone(),
            upper: self.upper.clone(),
            outer_lower: Some(self.q05.clone()),
            outer_upper: Some(self.q95.clone()),
        }
    }
}

/// A study entry point: run at `scale` into `dir`, figures linked with the prefix `link`
/// (the folder relative to the report root).
pub type StudyFn = fn(Scale, &Path, &str) -> Result<StudyReport>;

/// Study `S` and its entry point.
const fn entry<S: StudyParts>() -> (Study, StudyFn) {
    (S::STUDY, run_study::<S>)
}

/// The studies in report order.
pub const STUDIES: [(Study, StudyFn); 4] = [
    entry::<closeness::Closeness>(),
    entry::<momentum::Momentum>(),
    entry::<rotation::Rotation>(),
    entry::<flatness::Flatness>(),
];

/// Run every study at `scale` into `out` and write `out/report.md`, `out/report.html` and
/// `out/claims.json`; returns the markdown report's path. A study that fails is reported in its
/// section (with the error) and as the failed claim `<study>.study_ran`; the others still run.
///
/// `only` restricts the run to the studies with these folder names (all when empty); an
/// unknown name is an error listing the valid ones.
pub fn reproduce(scale: Scale, out: &Path, only: &[String]) -> Result<PathBuf> {
    for name in only {
        if Study::from_folder(name).is_none() {
            return Err(Error::invalid(
                "--only",
                name,
                format!(
                    "one of {}",
                    Study::ALL
                        .iter()
                        .map(|s| s.folder())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(format!("cannot create {}", out.display()), e))?;
    let t0 = Instant::now();
    let mut claims: Vec<Claim> = Vec::new();
    let mut sections = String::new();
    for (study, run) in STUDIES {
        let name = study.folder();
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let dir = out.join(name);
        let started = Instant::now();
        eprintln!("study {name} ...");
        match run(scale, &dir, name) {
            Ok(rep) => {
                let _ = writeln!(sections, "## {}\n\n{}\n", rep.title, rep.body);
                let _ = writeln!(
                    sections,
                    "_(study time {:.1} s; files in `{name}/`)_\n",
                    started.elapsed().as_secs_f64()
                );
                claims.extend(rep.claims);
            }
            Err(e) => {
                let _ = writeln!(sections, "## {name}\n\n**The study failed:** {e}\n");
                claims.push(Claim::study_failed(study, &e.to_string()));
            }
        }
    }
    let mut md = String::from("# quasistatic: reproduced results\n\n");
    let _ = writeln!(
        md,
        "Scale `{scale:?}`, {} threads, {:.0} s in all. Every number below comes from this run; each study's folder holds \
         its configs, tidy CSVs, JSON summaries and plots.\n",
        rayon::current_num_threads(),
        t0.elapsed().as_secs_f64()
    );
    md += &summary_table(&claims);
    md += "\n";
    md += &sections;
    let path = out.join("report.md");
    write_atomic(&path, md.as_bytes())?;
    write_atomic(
        &out.join("report.html"),
        markdown_to_html("quasistatic report", &md).as_bytes(),
    )?;
    write_atomic(
        &out.join("claims.json"),
        serde_json::to_string_pretty(&claims)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(path)
}

/// The summary section of the report: counts by verdict and one row per claim.
fn summary_table(claims: &[Claim]) -> String {
    let count = |v: Verdict| claims.iter().filter(|c| c.verdict == v).count();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Summary: {} of {} claims supported\n",
        count(Verdict::Supported),
        claims.len()
    );
    let others: Vec<String> = [
        Verdict::Contradicted,
        Verdict::Inconclusive,
        Verdict::Failed,
    ]
    .into_iter()
    .filter(|&v| count(v) > 0)
    .map(|v| format!("{} {}", count(v), v.label().replace("**", "")))
    .collect();
    if !others.is_empty() {
        let _ = writeln!(md, "Not supported: {}.\n", others.join(", "));
    }
    md += "| study | claim | id | measured | expected | verdict |\n|---|---|---|---|---|---|\n";
    for c in claims {
        let _ = writeln!(
            md,
            "| {} | {} | `{}` | {} | {} | {} |",
            c.id.study(),
            c.id.statement(),
            c.id,
            c.detail,
            c.expected,
            c.verdict.label()
        );
    }
    md
}

/// Render markdown (tables, images) as a standalone HTML page.
pub fn markdown_to_html(title: &str, md: &str) -> String {
    use pulldown_cmark::{html, Options, Parser};
    let mut body = String::new();
    html::push_html(&mut body, Parser::new_ext(md, Options::ENABLE_TABLES));
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}\
         img{{max-width:100%}}</style></head><body>\n{body}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary counts the verdicts and lists every claim under its id.
    #[test]
    fn summary_table_counts_verdicts() {
        let claim = |id: ClaimId, verdict: Verdict| Claim {
            id,
            value: 1.0,
            interval: None,
            expected: "e".into(),
            verdict,
            detail: "d".into(),
        };
        let claims = [
            claim(momentum::MomentumClaim::Collapse.into(), Verdict::Supported),
            claim(
                momentum::MomentumClaim::RuleBreaksBeforeBound.into(),
                Verdict::Inconclusive,
            ),
            Claim::study_failed(Study::Flatness, "boom"),
        ];
        let md = summary_table(&claims);
        assert!(
            md.starts_with("## Summary: 1 of 3 claims supported\n"),
            "{md}"
        );
        assert!(md.contains("Not supported: 1 inconclusive (Monte-Carlo), 1 failed."));
        assert!(md.contains("| momentum_scaling | scaling eta and B"));
        assert!(md.contains("`momentum_scaling.rule_breaks_before_bound`"));
        assert!(md.contains("| flatness | the study ran | `flatness.study_ran` | error: boom |"));
    }

    /// A band is the series `ensemble_series` draws for the same observable.
    #[test]
    fn band_matches_ensemble_series() {
        let r = EnsembleResult {
            observables: vec!["loss".into(), "y0".into()],
            steps: vec![0, 5, 10],
            trajectories: 3,
            values: vec![
                1.0,
                0.1,
                2.0,
                0.2,
                3.0,
                0.3, // trajectory 0
                1.5,
                0.0,
                2.5,
                0.4,
                3.5,
                0.1, // trajectory 1
                0.5,
                0.2,
                1.0,
                0.1,
                f64::NAN,
                f64::NAN, // trajectory 2, diverged at step 10
            ],
            valid: vec![3, 3, 2],
            divergences: vec![],
            gradient_evaluations: 0,
            seconds: 0.0,
        };
        let series = crate::plot::ensemble_series(&r, &summarize_ensemble(&r), 1, "y0");
        let band = Band::of(&r, "y0").unwrap().series("y0");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&band.x), bits(&series.x));
        assert_eq!(bits(&band.mean), bits(&series.mean));
        assert_eq!(bits(&band.lower), bits(&series.lower));
        assert_eq!(bits(&band.upper), bits(&series.upper));
        assert_eq!(
            bits(band.outer_lower.as_ref().unwrap()),
            bits(series.outer_lower.as_ref().unwrap())
        );
        assert_eq!(
            bits(band.outer_upper.as_ref().unwrap()),
            bits(series.outer_upper.as_ref().unwrap())
        );
        assert!(Band::of(&r, "loss_min").is_none());
    }

    /// The entry points are in report order, one per study.
    #[test]
    fn studies_in_report_order() {
        assert_eq!(STUDIES.map(|(s, _)| s), Study::ALL);
    }

    /// An unknown `--only` name is refused before anything runs.
    #[test]
    fn reproduce_refuses_unknown_studies() {
        let out = std::env::temp_dir().join(format!("quasistatic-only-{}", std::process::id()));
        let err = reproduce(Scale::Tiny, &out, &["momentum".into()]).unwrap_err();
        assert!(err.to_string().contains("momentum_scaling"), "{err}");
        assert!(!out.exists());
    }
}
