//! The core crate's layering, checked on its source: every module imports only modules of
//! lower layers (the table in `src/lib.rs`), so there is no import cycle and peers such as
//! `simulate` (true dynamics) and `derive` (derived dynamics) know nothing of each other. And
//! the core depends on no plotting, Markdown, terminal or binding crate.
//!
//! A reference is any `crate::<module>` path outside test code (`tests.rs` files, the
//! `lane_testing` helpers and `#[cfg(test)] mod tests { .. }` blocks, which may use anything
//! to check a module against an independent one), doc comments included, so that a doc link
//! does not point upward either.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The core's modules, lowest layer first; a module may import modules of strictly lower
/// layers only. `Error` and `Result` are the root re-exports of `error`.
const LAYERS: &[&[&str]] = &[
    &["error", "engine", "linalg"],
    &["data"],
    &["model"],
    &["noise", "optim", "observe"],
    &["record", "manifold"],
    &["stats", "simulate", "derive"],
    &["sde"],
    &["config"],
];

/// The module a root item belongs to: `Error` and `Result` are `error`'s re-exports, and
/// `with_model!` is exported at the root by the model registry.
fn module_of(name: &str) -> &str {
    match name {
        "Error" | "Result" => "error",
        "with_model" => "model",
        m => m,
    }
}

fn layer_of(name: &str) -> Option<usize> {
    let module = module_of(name);
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Whether the root item `name` is module `module` itself.
fn same(name: &str, module: &str) -> bool {
    module_of(name) == module
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The non-test source files of a top-level module (`m.rs` and everything under `m/`).
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src().join(format!("{module}.rs"));
    if file.exists() {
        out.push(file);
    }
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let name = p.file_name().unwrap().to_str().unwrap();
                if name != "tests.rs" && name != "lane_testing.rs" {
                    out.push(p);
                }
            }
        }
    }
    assert!(!out.is_empty(), "module {module} has no source");
    out
}

/// `text` without its `#[cfg(test)] mod tests { .. }` block (always last in a file here).
fn without_tests(text: &str) -> &str {
    let mut cut = text.len();
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        if text[at..]
            .trim_start_matches("#[cfg(test)]")
            .trim_start()
            .starts_with("mod tests {")
        {
            cut = at;
            break;
        }
        from = at + 1;
    }
    &text[..cut]
}

/// Every `crate::<module>` in `text`.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `$crate::` in macros names the crate too.
        let name: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn every_module_imports_only_lower_layers() {
    let mut violations = Vec::new();
    let mut listed = BTreeSet::new();
    for (layer, modules) in LAYERS.iter().enumerate() {
        for &module in *modules {
            listed.insert(module.to_string());
            for file in files_of(module) {
                let text = fs::read_to_string(&file).unwrap();
                for r in references(without_tests(&text)) {
                    if same(&r, module) {
                        continue;
                    }
                    match layer_of(&r) {
                        Some(l) if l < layer => {}
                        Some(l) => violations.push(format!(
                            "{}: {module} (layer {layer}) refers to crate::{r} (layer {l})",
                            file.display()
                        )),
                        None => violations.push(format!(
                            "{}: crate::{r} is in no layer of this test's table",
                            file.display()
                        )),
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
    // Every module of the crate is in the table.
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(m) = line.strip_prefix("pub mod ") {
            let m = m.trim_end_matches(';');
            assert!(
                listed.contains(m),
                "module {m} is missing from the layer table"
            );
        }
    }
}

/// The check above sees what it should: a lower module referring to a higher one is caught,
/// test blocks are skipped.
#[test]
fn the_layer_check_catches_an_upward_reference() {
    let text = "use crate::engine::Lanes;\n/// See [`crate::simulate`].\nfn f() {}\n\
                #[cfg(test)]\nmod tests {\n    use crate::config::Config;\n}\n";
    let refs = references(without_tests(text));
    assert_eq!(
        refs,
        BTreeSet::from(["engine".to_string(), "simulate".to_string()])
    );
    assert!(layer_of("simulate").unwrap() > layer_of("model").unwrap());
    assert_eq!(layer_of("Result"), layer_of("error"));
}

/// The core library has no plotting, Markdown, terminal, command-line or binding dependency:
/// those live in `quasistatic-studies`, `quasistatic-cli` and future bindings.
#[test]
fn the_core_has_no_front_end_dependency() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap();
    for forbidden in [
        "plotters",
        "pulldown-cmark",
        "indicatif",
        "clap",
        "pyo3",
        "numpy",
    ] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(forbidden)),
            "the core depends on {forbidden}"
        );
    }
}
