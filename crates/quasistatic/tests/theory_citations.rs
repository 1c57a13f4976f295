//! Every citation of the project's theory document (`docs/theory.md section N`, `sections
//! N, M`, `sections N-M`, `sections N and M`) in the code, the examples, the Python package,
//! the benchmarks and the README names a section that exists, and nothing cites a document
//! outside the repository.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files under `dir` with one of `exts`, skipping build output and virtual environments.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if !name.starts_with('.') && name != "target" && !name.starts_with("out") {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

/// Section numbers of the headings `## N. Title` of the theory document.
fn sections(theory: &str) -> Vec<u32> {
    theory
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| h.split('.').next()?.trim().parse().ok())
        .collect()
}

/// The section numbers cited after each `theory.md section(s)` in `text`, with the line.
fn citations(text: &str) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(k) = rest.find("theory.md section") {
            rest = &rest[k + "theory.md section".len()..];
            let list = rest.strip_prefix('s').unwrap_or(rest);
            // The list: numbers joined by ", ", "-", " and ".
            let end = list
                .char_indices()
                .find(|&(j, c)| {
                    !(c.is_ascii_digit()
                        || c == ' '
                        || c == ','
                        || c == '-'
                        || list[j..].starts_with("and ")
                        || list[..j].ends_with('a')
                        || list[..j].ends_with("an"))
                })
                .map_or(list.len(), |(j, _)| j);
            let nums: Vec<u32> = list[..end]
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|t| t.parse().ok())
                .collect();
            assert!(
                !nums.is_empty(),
                "line {}: a citation without a section number: {line}",
                i + 1
            );
            // A range `N-M` cites every section from N to M.
            let ranges = list[..end].split(',').flat_map(|part| {
                let b: Vec<u32> = part
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|t| t.parse().ok())
                    .collect();
                if part.contains('-') && b.len() == 2 {
                    (b[0]..=b[1]).collect::<Vec<_>>()
                } else {
                    b
                }
            });
            out.extend(ranges.map(|n| (i + 1, n)));
        }
    }
    out
}

#[test]
fn the_parser_reads_every_citation_form() {
    let t = "a (docs/theory.md section 7) b docs/theory.md sections 3, 4, 5 c \
             docs/theory.md sections 2-4 d docs/theory.md sections 6 and 9.";
    let got: Vec<u32> = citations(t).into_iter().map(|(_, n)| n).collect();
    assert_eq!(got, vec![7, 3, 4, 5, 2, 3, 4, 6, 9]);
}

#[test]
fn every_cited_section_exists() {
    let root = root();
    let theory = std::fs::read_to_string(root.join("docs/theory.md")).expect("docs/theory.md");
    let have = sections(&theory);
    assert!(have.len() >= 9, "docs/theory.md has sections {have:?}");
    let mut paths = Vec::new();
    for dir in [
        "crates", "examples", "python", "bench", "docs", "tests", "scripts",
    ] {
        files(
            &root.join(dir),
            &[".rs", ".md", ".toml", ".py", ".pyi", ".sh"],
            &mut paths,
        );
    }
    paths.push(root.join("README.md"));
    // Names of documents outside the repository that earlier versions cited (assembled here so
    // that this file does not mention them itself).
    let outside = [["THEORY", ".md"].concat(), ["..", "/shared"].concat()];
    let mut cited = 0;
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        if p.ends_with("theory_citations.rs") {
            continue;
        }
        for (line, n) in citations(&text) {
            assert!(
                have.contains(&n),
                "{}:{line} cites docs/theory.md section {n}, which does not exist (sections: {have:?})",
                p.display()
            );
            cited += 1;
        }
        assert!(
            !outside.iter().any(|o| text.contains(o.as_str())),
            "{} cites a document outside the repository",
            p.display()
        );
    }
    assert!(
        cited >= 40,
        "only {cited} citations found: the scan is broken"
    );
}
