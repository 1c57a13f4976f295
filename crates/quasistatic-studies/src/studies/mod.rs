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
use crate::staging::Staging;
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
    /// The seeds of the study's runs (ensemble, data and rotation seeds).
    pub seeds: Vec<u64>,
    /// The configurations the study ran: `(name, TOML text)`, the name a path relative to
    /// the study's folder where the render saves it.
    pub configs: Vec<(String, String)>,
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

    /// The seeds of the study's runs (for the provenance in `claims.json`): by default the
    /// distinct top-level seeds of its [`StudyParts::configs`], ascending.
    fn seeds(data: &Self::Data) -> Vec<u64> {
        let mut seeds: Vec<u64> = Self::configs(data)
            .iter()
            .filter_map(|(_, text)| seed_of(text))
            .collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds
    }

    /// The configurations the study ran, `(name, TOML text)` (for the provenance in
    /// `claims.json`; none for a study whose runs are built in code).
    fn configs(_data: &Self::Data) -> Vec<(String, String)> {
        Vec::new()
    }
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
        seeds: S::seeds(&data),
        configs: S::configs(&data),
    })
}

/// The top-level `seed` of a configuration's TOML text (the ensemble seed), if it has one.
pub fn seed_of(toml_text: &str) -> Option<u64> {
    let value: toml::Table = toml::from_str(toml_text).ok()?;
    value
        .get("seed")
        .and_then(toml::Value::as_integer)
        .and_then(|s| u64::try_from(s).ok())
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

/// Typical seconds of each study (in report order) at `scale` on two cores (release build),
/// for the estimate of the time left that `reproduce` prints. Quick: measured (134, 8, 253
/// and 5 s; 400 s in all); tiny and full: rough estimates (full about ten times quick).
fn typical_seconds(scale: Scale) -> [f64; 4] {
    scale.pick(
        [2.0, 1.0, 3.0, 1.0],
        [134.0, 8.0, 253.0, 5.0],
        [1340.0, 80.0, 2530.0, 50.0],
    )
}

/// `seconds` as `1 h 02 min`, `3 min 05 s` or `12.3 s`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s >= 3600.0 {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else if s >= 60.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// Run every study at `scale` into `out` and write `out/report.md`, `out/report.html` and
/// `out/claims.json`; returns the markdown report's path. A study that fails is reported in its
/// section (with the error) and as the failed claim `<study>.study_ran`; the others still run.
///
/// The output is transactional ([`Staging`]): `out` is checked before any study runs (a file,
/// an unwritable parent or a folder of other files fail at once), every study writes into a
/// staging folder beside it, and the staging folder replaces `out` whole at the end, so an
/// earlier report's study folders never survive beside a new one (`--only flatness` into an
/// old folder leaves the flatness study alone) and an interrupted run leaves `out` as it was.
///
/// Progress goes to stderr: one line per study when it starts (with an estimate of the time
/// left from the scale's typical study times, rescaled by how long the studies so far took)
/// and one when it ends.
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
    let staging = Staging::new(out)?;
    let root = staging.path().to_path_buf();
    let t0 = Instant::now();
    let mut claims: Vec<Claim> = Vec::new();
    let mut sections = String::new();
    let mut studies: Vec<StudyProvenance> = Vec::new();
    let selected: Vec<(usize, Study, StudyFn)> = STUDIES
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| only.is_empty() || only.iter().any(|o| o == s.folder()))
        .map(|(i, &(s, f))| (i, s, f))
        .collect();
    let typical = typical_seconds(scale);
    let (mut typical_done, mut actual_done) = (0.0, 0.0);
    for (n, &(index, study, run)) in selected.iter().enumerate() {
        let name = study.folder();
        let typical_left: f64 = selected[n..].iter().map(|(i, _, _)| typical[*i]).sum();
        // Rescale the typical times by the speed of this machine so far.
        let speed = if typical_done > 0.0 {
            actual_done / typical_done
        } else {
            1.0
        };
        eprintln!(
            "[{}/{}] study {name} ... (about {} left)",
            n + 1,
            selected.len(),
            duration(typical_left * speed)
        );
        let dir = root.join(name);
        let started = Instant::now();
        match run(scale, &dir, name) {
            Ok(rep) => {
                let _ = writeln!(sections, "## {}\n\n{}\n", rep.title, rep.body);
                let _ = writeln!(
                    sections,
                    "_(study time {:.1} s; files in `{name}/`)_\n",
                    started.elapsed().as_secs_f64()
                );
                studies.push(StudyProvenance::new(study, &rep));
                claims.extend(rep.claims);
            }
            Err(e) => {
                let _ = writeln!(sections, "## {name}\n\n**The study failed:** {e}\n");
                claims.push(Claim::study_failed(study, &e.to_string()));
                studies.push(StudyProvenance {
                    study,
                    seeds: Vec::new(),
                    configs: Vec::new(),
                });
            }
        }
        let took = started.elapsed().as_secs_f64();
        typical_done += typical[index];
        actual_done += took;
        eprintln!(
            "[{}/{}] study {name} done in {} ({} in all)",
            n + 1,
            selected.len(),
            duration(took),
            duration(t0.elapsed().as_secs_f64())
        );
    }
    let mut md = String::from("# quasistatic: reproduced results\n\n");
    let _ = writeln!(
        md,
        "Scale `{scale:?}`, {} threads, {:.0} s in all. Every number below comes from this run; each study's folder holds \
         the files it wrote (configurations where the runs are configurations, tidy CSVs, JSON summaries and plots); \
         `claims.json` holds every claim with its numbers, verdict and the run's provenance.\n",
        rayon::current_num_threads(),
        t0.elapsed().as_secs_f64()
    );
    md += &summary_table(&claims);
    md += "\n";
    md += &sections;
    write_atomic(&root.join("report.md"), md.as_bytes())?;
    write_atomic(
        &root.join("report.html"),
        markdown_to_html("quasistatic report", &md).as_bytes(),
    )?;
    let file = ClaimsFile {
        provenance: Provenance::now(scale, studies),
        claims: &claims,
    };
    let json = serde_json::to_string_pretty(&file)
        .map_err(|e| Error::Numerical(format!("cannot serialise the claims: {e}")))?;
    write_atomic(&root.join("claims.json"), json.as_bytes())?;
    let out = staging.commit()?;
    Ok(out.join("report.md"))
}

/// `claims.json`: the run's provenance and every claim.
#[derive(Serialize)]
struct ClaimsFile<'a> {
    provenance: Provenance,
    claims: &'a [Claim],
}

/// Where the numbers of a report come from.
#[derive(Clone, Debug, Serialize)]
pub struct Provenance {
    /// The crate version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The git commit of the source checkout the program was built from, read at run time
    /// (`git rev-parse HEAD` in the build's source folder); `None` when git or the checkout
    /// is not there.
    pub commit: Option<String>,
    /// Whether that checkout had uncommitted changes (`None` when unknown).
    pub dirty: Option<bool>,
    /// When the report was written, UTC, ISO 8601 (`2026-12-03T21:47:03Z`).
    pub date: String,
    /// The scale of the runs.
    pub scale: Scale,
    /// Worker threads (results do not depend on it).
    pub threads: usize,
    /// Per study: seeds and configuration hashes.
    pub studies: Vec<StudyProvenance>,
}

impl Provenance {
    /// The provenance of a run at `scale` finishing now.
    pub fn now(scale: Scale, studies: Vec<StudyProvenance>) -> Provenance {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (commit, dirty) = git_commit();
        Provenance {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit,
            dirty,
            date: utc_date(secs),
            scale,
            threads: rayon::current_num_threads(),
            studies,
        }
    }
}

/// A study's seeds and the hash of every configuration it ran.
#[derive(Clone, Debug, Serialize)]
pub struct StudyProvenance {
    /// Which study.
    pub study: Study,
    /// Seeds of its runs.
    pub seeds: Vec<u64>,
    /// Its configurations: name and FNV-1a hash of the TOML text.
    pub configs: Vec<ConfigHash>,
}

impl StudyProvenance {
    fn new(study: Study, rep: &StudyReport) -> Self {
        StudyProvenance {
            study,
            seeds: rep.seeds.clone(),
            configs: rep
                .configs
                .iter()
                .map(|(name, text)| ConfigHash {
                    name: name.clone(),
                    fnv1a64: format!("{:016x}", fnv1a64(text.as_bytes())),
                })
                .collect(),
        }
    }
}

/// A configuration and the hash of its TOML text.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigHash {
    /// Path of the saved configuration relative to the study's folder.
    pub name: String,
    /// 64-bit FNV-1a of the TOML text as saved, 16 hex digits.
    pub fnv1a64: String,
}

/// 64-bit FNV-1a of `bytes`: `h = 0xcbf29ce484222325`, then per byte `h = (h ^ b) *
/// 0x100000001b3 (mod 2^64)`. Written out because it is a dozen lines, stable across Rust
/// versions and platforms (the standard library's hashers are not), and no hashing crate is
/// a dependency of the workspace; it identifies a configuration, it is not a security hash.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `secs` after the Unix epoch as an ISO 8601 UTC date-time. The civil date from the day
/// count is Howard Hinnant's `civil_from_days` (proleptic Gregorian calendar, eras of 400
/// years), written out since no date crate is a dependency.
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The git commit of the source folder this crate was built from and whether it had
/// uncommitted changes, if git answers there.
fn git_commit() -> (Option<String>, Option<bool>) {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty());
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

/// `text` made safe for a Markdown table cell (also when rendered to HTML): backslash, `|`,
/// `*`, `_`, `` ` ``, `[` and `]` are backslash-escaped, `<`, `>` and `&` become HTML
/// entities, and line breaks become spaces.
pub fn escape_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// The summary section of the report: counts by verdict and one row per claim (cells
/// escaped with [`escape_cell`]).
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
    md += "Verdicts: **supported** (the criterion in the expected column holds), **contradicted** (it fails beyond \
           the Monte-Carlo error), **inconclusive** (the Monte-Carlo floor is above the tolerance, or the 95% interval \
           straddles the criterion: more trajectories are needed), **failed** (no measurement).\n\n";
    md += "| study | claim | id | measured | expected | verdict |\n|---|---|---|---|---|---|\n";
    for c in claims {
        let _ = writeln!(
            md,
            "| {} | {} | `{}` | {} | {} | {} |",
            c.id.study(),
            escape_cell(&c.id.statement()),
            c.id,
            escape_cell(&c.detail),
            escape_cell(&c.expected),
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
            tolerance: None,
            floor: None,
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

    /// Cells with `|`, `*`, `_`, `<` and `&` neither split a summary row nor turn into markup:
    /// every row of the Markdown table has its six cells, the HTML table has six `<td>` per
    /// row and shows the text as written, and the verdict cell keeps its verdict.
    #[test]
    fn summary_cells_are_escaped() {
        let claim = |detail: &str, expected: &str, verdict: Verdict| Claim {
            id: momentum::MomentumClaim::Collapse.into(),
            value: 1.0,
            interval: None,
            tolerance: None,
            floor: None,
            expected: expected.into(),
            verdict,
            detail: detail.into(),
        };
        let claims = [
            claim(
                "largest |derived - true| / true 0.012",
                "≤ 0.05",
                Verdict::Supported,
            ),
            claim(
                "final ||w||_1 4.2 vs ||w||_1 3.1; a*b_c <b>x</b> & `y` [z]",
                "a < b",
                Verdict::Contradicted,
            ),
        ];
        let md = summary_table(&claims);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| momentum")).collect();
        assert_eq!(rows.len(), 2);
        for row in &rows {
            // Unescaped pipes: the 7 cell borders only.
            let bytes = row.as_bytes();
            let borders = (0..bytes.len())
                .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
                .count();
            assert_eq!(borders, 7, "{row}");
        }
        assert!(rows[0].ends_with("| supported |"), "{}", rows[0]);
        assert!(rows[1].ends_with("| **contradicted** |"), "{}", rows[1]);
        let html = markdown_to_html("t", &md);
        let body_rows: Vec<&str> = html
            .split("<tr>")
            .skip(2) // before the table, the header row
            .collect();
        assert_eq!(body_rows.len(), 2, "{html}");
        for row in &body_rows {
            assert_eq!(row.matches("<td>").count(), 6, "{row}");
        }
        assert!(body_rows[0].contains("<td>largest |derived - true| / true 0.012</td>"));
        assert!(body_rows[1].contains(
            "<td>final ||w||_1 4.2 vs ||w||_1 3.1; a*b_c &lt;b&gt;x&lt;/b&gt; &amp; `y` [z]</td>"
        ));
        assert!(body_rows[1].contains("<td>a &lt; b</td>"));
        assert!(body_rows[1].contains("<td><strong>contradicted</strong></td>"));
    }

    /// The gap criterion on hand-made numbers: floor at or above the tolerance is
    /// inconclusive whatever the gap, a gap within the tolerance is supported, a gap beyond it
    /// whose interval reaches the tolerance is inconclusive, beyond it entirely contradicted.
    #[test]
    fn gap_verdicts() {
        assert_eq!(Verdict::of_gap(0.05, 0.0, 0.1, 0.12), Verdict::Inconclusive);
        assert_eq!(Verdict::of_gap(0.05, 0.0, 0.1, 0.1), Verdict::Inconclusive);
        assert_eq!(
            Verdict::of_gap(0.05, 0.0, 0.1, f64::NAN),
            Verdict::Inconclusive
        );
        assert_eq!(Verdict::of_gap(0.1, 0.05, 0.1, 0.05), Verdict::Supported);
        assert_eq!(
            Verdict::of_gap(0.12, 0.09, 0.1, 0.05),
            Verdict::Inconclusive
        );
        assert_eq!(Verdict::of_gap(0.2, 0.15, 0.1, 0.05), Verdict::Contradicted);
        assert_eq!(Verdict::of_gap(f64::NAN, 0.0, 0.1, 0.05), Verdict::Failed);
        use Verdict::*;
        assert_eq!(Verdict::all(&[]), Supported);
        assert_eq!(Verdict::all(&[Supported, Inconclusive]), Inconclusive);
        assert_eq!(Verdict::all(&[Inconclusive, Contradicted]), Contradicted);
        assert_eq!(Verdict::all(&[Contradicted, Failed]), Failed);
    }

    /// FNV-1a against the published test vectors, and the UTC date against known instants.
    #[test]
    fn provenance_hash_and_date() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_date(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(seed_of("seed = 17\nsteps = 3\n"), Some(17));
        assert_eq!(seed_of("steps = 3\n"), None);
    }

    /// `reproduce --only` into the folder of an earlier report replaces it whole: no stale
    /// study folder survives, `claims.json` has numbers, verdicts and provenance, and a bad
    /// output path fails before any study runs.
    #[test]
    fn reproduce_replaces_an_old_report_whole() {
        let root =
            std::env::temp_dir().join(format!("quasistatic-reproduce-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let out = root.join("results");
        // An earlier report: a quasistatic output folder with another study's folder.
        std::fs::create_dir_all(out.join("closeness")).unwrap();
        std::fs::write(out.join(crate::staging::MARKER), "").unwrap();
        std::fs::write(out.join("closeness").join("stale.csv"), "old").unwrap();
        let t0 = Instant::now();
        let report = reproduce(Scale::Tiny, &out, &["momentum_scaling".into()]).unwrap();
        eprintln!(
            "reproduce --only momentum_scaling (tiny): {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        assert_eq!(report, out.join("report.md"));
        assert!(!out.join("closeness").exists());
        assert!(out.join("momentum_scaling").join("momentum.json").is_file());
        let names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["results"], "no staging folder left");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("claims.json")).unwrap())
                .unwrap();
        let p = &json["provenance"];
        assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(p["scale"], "Tiny");
        assert!(p["date"].as_str().unwrap().ends_with('Z'));
        let study = &p["studies"][0];
        assert_eq!(study["study"], "momentum_scaling");
        assert_eq!(study["seeds"], serde_json::json!([23]));
        assert_eq!(study["configs"].as_array().unwrap().len(), 8);
        let saved = std::fs::read(out.join("momentum_scaling/collapse/k_1/config.toml")).unwrap();
        assert_eq!(
            study["configs"][0]["fnv1a64"],
            format!("{:016x}", fnv1a64(&saved))
        );
        let collapse = json["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "momentum_scaling.collapse")
            .unwrap();
        assert!(collapse["value"].is_f64());
        assert_eq!(collapse["tolerance"], 0.1);
        assert!(collapse["floor"].is_f64());
        assert!(collapse["interval"]["low"].is_f64());
        assert!(collapse["verdict"].is_string());
        // A file as --out fails at once.
        let file = root.join("f.txt");
        std::fs::write(&file, "x").unwrap();
        let t0 = Instant::now();
        let err = reproduce(Scale::Tiny, &file, &[]).unwrap_err().to_string();
        assert!(err.contains("--out"), "{err}");
        assert!(
            t0.elapsed().as_secs_f64() < 1.0,
            "checked before any study ran"
        );
        std::fs::remove_dir_all(&root).unwrap();
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
