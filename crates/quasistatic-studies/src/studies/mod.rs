//! The studies and the one-command report (`quasistatic reproduce`).
//!
//! Each study runs its simulations and derivations into its own folder and returns a
//! [`StudyReport`]: a markdown section (figures linked relative to the report root) and the
//! claims it checked, each with the measured number, its interval, what was expected and a
//! verdict. [`reproduce`] runs them all and writes `report.md` and `report.html` with a summary
//! table of every claim.
//!
//! Studies (docs/theory.md sections 4, 5, 8):
//! 1. [`closeness`]: the derived dynamics reproduces the true one for SGD, heavy ball and Adam
//!    under label, mini-batch and isotropic noise, with gaps that shrink as eta shrinks;
//! 2. [`momentum`]: the heavy-ball scaling rule (eta and B scaled together) and where it breaks;
//! 3. [`rotation`]: Adam is not rotation invariant, SGD is;
//! 4. [`flatness`]: which flatness SGD and Adam seek on a sparse regression.

pub mod closeness;
pub mod flatness;
pub mod momentum;
pub mod rotation;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::output::write_atomic;
use quasistatic::error::{Error, Result};

/// Size of the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One checked claim.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Claim {
    /// What is claimed.
    pub claim: String,
    /// The measured number(s), with the interval.
    pub measured: String,
    /// What the theory expects.
    pub expected: String,
    /// Whether the measurement supports the claim.
    pub holds: bool,
}

/// What a study produced.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StudyReport {
    /// Section title.
    pub title: String,
    /// Markdown body (figures linked relative to the report root).
    pub body: String,
    /// Claims checked.
    pub claims: Vec<Claim>,
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

/// A study entry point: run at `scale` into `dir`, figures linked with the prefix `link`
/// (the folder relative to the report root).
pub type StudyFn = fn(Scale, &Path, &str) -> Result<StudyReport>;

/// The studies in report order: (folder name, entry point).
pub const STUDIES: [(&str, StudyFn); 4] = [
    ("closeness", closeness::run),
    ("momentum_scaling", momentum::run),
    ("adam_rotation", rotation::run),
    ("flatness", flatness::run),
];

/// Run every study at `scale` into `out` and write `out/report.md` and `out/report.html`;
/// returns the markdown report's path. A study that fails is reported in its section (with the
/// error) and as a failed claim; the others still run.
///
/// `only` restricts the run to the studies with these folder names (all when empty); an
/// unknown name is an error listing the valid ones.
pub fn reproduce(scale: Scale, out: &Path, only: &[String]) -> Result<PathBuf> {
    for name in only {
        if !STUDIES.iter().any(|(n, _)| n == name) {
            return Err(Error::invalid(
                "--only",
                name,
                format!(
                    "one of {}",
                    STUDIES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(format!("cannot create {}", out.display()), e))?;
    let t0 = Instant::now();
    let mut claims: Vec<(String, Claim)> = Vec::new();
    let mut sections = String::new();
    for (name, study) in STUDIES {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let dir = out.join(name);
        let started = Instant::now();
        eprintln!("study {name} ...");
        match study(scale, &dir, name) {
            Ok(rep) => {
                let _ = writeln!(sections, "## {}\n\n{}\n", rep.title, rep.body);
                let _ = writeln!(
                    sections,
                    "_(study time {:.1} s; files in `{name}/`)_\n",
                    started.elapsed().as_secs_f64()
                );
                claims.extend(rep.claims.into_iter().map(|c| (name.to_string(), c)));
            }
            Err(e) => {
                let _ = writeln!(sections, "## {name}\n\n**The study failed:** {e}\n");
                claims.push((
                    name.to_string(),
                    Claim {
                        claim: "study ran".into(),
                        measured: format!("error: {e}"),
                        expected: "success".into(),
                        holds: false,
                    },
                ));
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
    let held = claims.iter().filter(|(_, c)| c.holds).count();
    let _ = writeln!(
        md,
        "## Summary: {held} of {} claims supported\n",
        claims.len()
    );
    md += "| study | claim | measured | expected | verdict |\n|---|---|---|---|---|\n";
    for (study, c) in &claims {
        let _ = writeln!(
            md,
            "| {study} | {} | {} | {} | {} |",
            c.claim,
            c.measured,
            c.expected,
            if c.holds {
                "supported"
            } else {
                "**not supported**"
            }
        );
    }
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
        serde_json::to_string_pretty(&claims.iter().map(|(s, c)| (s, c)).collect::<Vec<_>>())
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(path)
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
