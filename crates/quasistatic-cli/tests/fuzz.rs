//! A fuzzed corpus of configurations and data files for the `quasistatic` binary.
//!
//! A property-based test (proptest, a fixed seed, [`CASES`] = 200 cases; about 40 s in a
//! debug build on two cores) takes a valid example configuration (`examples/*.toml`) and
//! mutates it: a value replaced by one of another type, out of range, huge, tiny, NaN or
//! infinite, empty or unicode; a field removed; an unknown field added; the text broken
//! (a character inserted, the file cut short, a line doubled); or, for the examples that read
//! a CSV file, the CSV mutated (a cell replaced, a row shortened or lengthened, the header
//! changed, the file emptied or cut). Each case runs `quasistatic check` and
//! `quasistatic simulate --out <tmp>` at small size (20 steps, 2 trajectories, a record every
//! 10 steps) and asserts:
//!
//! - no panic: no exit code 101, no death by a signal, no "panicked" on stderr, no run longer
//!   than [`TIMEOUT`];
//! - `check` exits 0 (valid) or 2 (invalid), never anything else;
//! - every exit 2 prints a message that names a field (`` `field` ``) or a line
//!   (`line N`) of the file at fault, or the data file when it is wrong as a whole;
//! - when `check` says invalid, `simulate` also exits 2 (unless `check` refused a size field
//!   that the small-size overrides replace);
//! - a `simulate` that does not succeed writes nothing: its `--out` does not exist afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Number of generated cases.
const CASES: u32 = 200;
/// Longest a single command may run (a hang is a failure).
const TIMEOUT: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example configurations, sorted by name: `(file name, text)`.
fn examples() -> Vec<(String, String)> {
    let dir = workspace().join("examples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A replacement value.
#[derive(Clone, Debug)]
enum NewValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    EmptyArray,
    FloatArray(Vec<f64>),
    EmptyTable,
}

impl NewValue {
    fn toml(&self) -> toml::Value {
        match self {
            NewValue::Int(i) => toml::Value::Integer(*i),
            NewValue::Float(x) => toml::Value::Float(*x),
            NewValue::Bool(b) => toml::Value::Boolean(*b),
            NewValue::Str(s) => toml::Value::String(s.clone()),
            NewValue::EmptyArray => toml::Value::Array(vec![]),
            NewValue::FloatArray(v) => {
                toml::Value::Array(v.iter().map(|x| toml::Value::Float(*x)).collect())
            }
            NewValue::EmptyTable => toml::Value::Table(toml::Table::new()),
        }
    }
}

/// A number: an integer or a float from the edges (zero, signs, huge, tiny, NaN, infinite).
fn number() -> impl Strategy<Value = NewValue> {
    prop_oneof![
        prop::sample::select(INTS.to_vec()).prop_map(NewValue::Int),
        prop::sample::select(FLOATS.to_vec()).prop_map(NewValue::Float),
        // Sizes around the limits: small enough to run, or far beyond what may be
        // allocated (a valid size that takes minutes is not what this corpus is for).
        prop::sample::select(vec![
            1i64 << 10,
            1 << 12,
            1 << 31,
            1 << 32,
            1 << 40,
            1 << 62
        ])
        .prop_map(NewValue::Int),
    ]
}

const INTS: [i64; 11] = [
    0,
    1,
    -1,
    2,
    3,
    7,
    1000,
    i32::MAX as i64,
    1 << 53,
    i64::MAX,
    i64::MIN,
];

const FLOATS: [f64; 14] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    1e308,
    -1e308,
    1e-308,
    5e-324,
    1e20,
    -1e-12,
];

fn new_value() -> impl Strategy<Value = NewValue> {
    let ints = prop::sample::select(INTS.to_vec());
    let floats = prop::sample::select(FLOATS.to_vec());
    let strings = prop::sample::select(vec![
        "",
        "x",
        "sgd",
        "ümlaut ∂θ 🙂",
        "\u{202e}rtl",
        "nan",
        "1e999",
        "../../../etc/passwd",
        "data/missing.csv",
        "a\"quote",
    ]);
    prop_oneof![
        ints.prop_map(NewValue::Int),
        floats.clone().prop_map(NewValue::Float),
        any::<bool>().prop_map(NewValue::Bool),
        strings.prop_map(|s| NewValue::Str(s.to_string())),
        Just(NewValue::EmptyArray),
        prop::collection::vec(floats, 1..4).prop_map(NewValue::FloatArray),
        Just(NewValue::EmptyTable),
    ]
}

/// A change to a configuration or its data file.
#[derive(Clone, Debug)]
enum Mutation {
    /// Replace the value at the `n`-th key path (modulo their number).
    Replace(usize, NewValue),
    /// Replace the `n`-th numeric value (modulo their number) by another number.
    ReplaceNumber(usize, NewValue),
    /// Remove the `n`-th key path.
    Remove(usize),
    /// Add an unknown field to the `n`-th table.
    Add(usize, String, NewValue),
    /// Insert a character at a byte offset (modulo the length, moved to a char boundary).
    InsertChar(usize, char),
    /// Cut the text at a byte offset.
    Truncate(usize),
    /// Repeat the `n`-th line.
    DuplicateLine(usize),
    /// Mutate the CSV data file (only for examples that read one; otherwise a no-op that
    /// leaves the example valid).
    Csv(CsvMutation),
}

/// A change to a CSV data file.
#[derive(Clone, Debug)]
enum CsvMutation {
    /// Replace the cell at (row, column), both modulo the size (row 0 is the header).
    Cell(usize, usize, String),
    /// Drop the last cell of a row.
    ShortRow(usize),
    /// Add a cell to a row.
    LongRow(usize),
    /// Keep only the header.
    HeaderOnly,
    /// An empty file.
    Empty,
    /// Cut the file at a byte offset.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let cell = prop::sample::select(vec![
        "", "nan", "NaN", "inf", "-inf", "1e400", "abc", "∂", "1,5", "\"2\"", " 3 ", "y",
    ]);
    let csv = prop_oneof![
        (any::<usize>(), any::<usize>(), cell).prop_map(|(r, c, s)| CsvMutation::Cell(
            r,
            c,
            s.to_string()
        )),
        any::<usize>().prop_map(CsvMutation::ShortRow),
        any::<usize>().prop_map(CsvMutation::LongRow),
        Just(CsvMutation::HeaderOnly),
        Just(CsvMutation::Empty),
        any::<usize>().prop_map(CsvMutation::Truncate),
    ];
    let field = prop::sample::select(vec!["lr2", "extra", "ñame", "seed_", "steps "]);
    prop_oneof![
        4 => (any::<usize>(), new_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        4 => (any::<usize>(), number()).prop_map(|(i, v)| Mutation::ReplaceNumber(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => (any::<usize>(), field, new_value())
            .prop_map(|(i, f, v)| Mutation::Add(i, f.to_string(), v)),
        1 => (any::<usize>(), prop::sample::select(vec!['=', '[', '"', 'é', '\0', '\n', '}', '🙂']))
            .prop_map(|(i, c)| Mutation::InsertChar(i, c)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        2 => csv.prop_map(Mutation::Csv),
    ]
}

/// Every key path of a table (`["optimizer", "lr"]`, ...), tables before their keys.
fn key_paths(table: &toml::Table, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for (k, v) in table {
        let mut path = prefix.to_vec();
        path.push(k.clone());
        out.push(path.clone());
        if let toml::Value::Table(t) = v {
            key_paths(t, &path, out);
        }
    }
}

/// The table at `path` (the root for an empty path).
fn table_at<'a>(root: &'a mut toml::Table, path: &[String]) -> Option<&'a mut toml::Table> {
    let mut t = root;
    for k in path {
        t = t.get_mut(k)?.as_table_mut()?;
    }
    Some(t)
}

/// Cut `text` at `at` (modulo its length), on a character boundary.
fn cut(text: &str, at: usize) -> &str {
    if text.is_empty() {
        return text;
    }
    let mut i = at % text.len();
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    &text[..i]
}

/// Apply `m` to the configuration text `config` and the CSV text `csv` (when the example has
/// one): the new texts.
fn apply(m: &Mutation, config: &str, csv: Option<&str>) -> (String, Option<String>) {
    let mut table: toml::Table = toml::from_str(config).unwrap();
    let mut paths = Vec::new();
    key_paths(&table, &[], &mut paths);
    let structural = |table: toml::Table| toml::to_string(&table).unwrap();
    let csv_out = csv.map(str::to_string);
    match m {
        Mutation::Replace(i, v) => {
            let path = &paths[i % paths.len()];
            let (last, parent) = path.split_last().unwrap();
            table_at(&mut table, parent)
                .unwrap()
                .insert(last.clone(), v.toml());
            (structural(table), csv_out)
        }
        Mutation::ReplaceNumber(i, v) => {
            let numeric: Vec<&Vec<String>> = paths
                .iter()
                .filter(|p| {
                    let (last, parent) = p.split_last().unwrap();
                    let mut t = table.clone();
                    table_at(&mut t, parent)
                        .and_then(|t| t.get(last).cloned())
                        .is_some_and(|v| v.is_integer() || v.is_float())
                })
                .collect();
            if let Some(path) = numeric.get(i % numeric.len().max(1)) {
                let (last, parent) = path.split_last().unwrap();
                table_at(&mut table, parent)
                    .unwrap()
                    .insert(last.clone(), v.toml());
            }
            (structural(table), csv_out)
        }
        Mutation::Remove(i) => {
            let path = &paths[i % paths.len()];
            let (last, parent) = path.split_last().unwrap();
            table_at(&mut table, parent).unwrap().remove(last);
            (structural(table), csv_out)
        }
        Mutation::Add(i, name, v) => {
            let tables: Vec<Vec<String>> = std::iter::once(Vec::new())
                .chain(paths.iter().cloned())
                .filter(|p| {
                    let mut t = table.clone();
                    table_at(&mut t, p).is_some()
                })
                .collect();
            let path = tables[i % tables.len()].clone();
            table_at(&mut table, &path)
                .unwrap()
                .insert(name.clone(), v.toml());
            (structural(table), csv_out)
        }
        Mutation::InsertChar(i, c) => {
            let head = cut(config, *i);
            let mut text = head.to_string();
            text.push(*c);
            text.push_str(&config[head.len()..]);
            (text, csv_out)
        }
        Mutation::Truncate(i) => (cut(config, *i).to_string(), csv_out),
        Mutation::DuplicateLine(i) => {
            let lines: Vec<&str> = config.lines().collect();
            let k = i % lines.len();
            let mut out: Vec<&str> = lines[..=k].to_vec();
            out.extend(&lines[k..]);
            (out.join("\n") + "\n", csv_out)
        }
        Mutation::Csv(c) => (config.to_string(), csv.map(|text| mutate_csv(c, text))),
    }
}

fn mutate_csv(m: &CsvMutation, text: &str) -> String {
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let join = |rows: &[Vec<String>]| {
        rows.iter()
            .map(|r| r.join(","))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    match m {
        CsvMutation::Cell(r, c, s) => {
            let r = r % rows.len();
            let c = c % rows[r].len();
            rows[r][c] = s.clone();
            join(&rows)
        }
        CsvMutation::ShortRow(r) => {
            let r = r % rows.len();
            rows[r].pop();
            join(&rows)
        }
        CsvMutation::LongRow(r) => {
            let r = r % rows.len();
            rows[r].push("0.5".into());
            join(&rows)
        }
        CsvMutation::HeaderOnly => join(&rows[..1]),
        CsvMutation::Empty => String::new(),
        CsvMutation::Truncate(i) => cut(text, *i).to_string(),
    }
}

/// The CSV file a configuration reads (`[data] kind = "csv"`), relative to its folder.
fn csv_path(config: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(config).ok()?;
    let data = table.get("data")?.as_table()?;
    if data.get("kind")?.as_str()? != "csv" {
        return None;
    }
    Some(data.get("path")?.as_str()?.to_string())
}

/// What a finished command did.
struct Run {
    status: ExitStatus,
    stderr: String,
}

/// Run the binary with `args` in `dir`, killing it after [`TIMEOUT`].
fn run(dir: &Path, args: &[&str], input: &str) -> Result<Run, TestCaseError> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quasistatic"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TestCaseError::fail(format!("cannot start the binary: {e}")))?;
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestCaseError::fail(format!(
                "`quasistatic {}` ran longer than {TIMEOUT:?}\ninput:\n{input}",
                args.join(" ")
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Run {
        status,
        stderr: reader.join().unwrap(),
    })
}

/// Whether an error message names a field (`` `name` ``), a line (`line N`) or, for a data
/// file that is wrong as a whole (empty, no rows), the file (`data file PATH: ...`).
fn names_field_or_line(stderr: &str) -> bool {
    if stderr.contains("error: data file ") {
        return true;
    }
    let field = stderr
        .split('`')
        .nth(1)
        .is_some_and(|f| !f.trim().is_empty());
    let line = stderr.match_indices("line ").any(|(i, _)| {
        stderr[i + 5..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    });
    field || line
}

/// The checks of one run (see the module docs).
fn no_panic(what: &str, r: &Run, input: &str) -> Result<(), TestCaseError> {
    let code = r.status.code();
    prop_assert!(
        code.is_some(),
        "{what} died by a signal ({:?}); stderr: {}\ninput:\n{input}",
        r.status,
        r.stderr
    );
    prop_assert_ne!(
        code,
        Some(101),
        "{} panicked: {}\ninput:\n{}",
        what,
        r.stderr,
        input
    );
    prop_assert!(
        !r.stderr.contains("panicked"),
        "{what} panicked: {}\ninput:\n{input}",
        r.stderr
    );
    if code == Some(2) {
        prop_assert!(
            names_field_or_line(&r.stderr),
            "{what}: exit 2 without naming a field or a line: {}\ninput:\n{input}",
            r.stderr
        );
    }
    Ok(())
}

/// Counts of the corpus: configurations `check` accepted and refused.
#[derive(Default)]
struct Stats {
    valid: std::sync::atomic::AtomicUsize,
    invalid: std::sync::atomic::AtomicUsize,
}

/// One case: write the mutated example into a fresh folder, run `check` and `simulate`.
fn case(
    stats: &Stats,
    root: &Path,
    n: usize,
    examples: &[(String, String)],
    pick: usize,
    m: &Mutation,
) -> Result<(), TestCaseError> {
    let (name, text) = &examples[pick % examples.len()];
    let dir = root.join(format!("case-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // The examples' data files, so that relative paths resolve as in examples/.
    for entry in std::fs::read_dir(workspace().join("examples/data")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join("data").join(p.file_name().unwrap())).unwrap();
        }
    }
    let csv_rel = csv_path(text);
    let csv_text = csv_rel
        .as_ref()
        .map(|rel| std::fs::read_to_string(workspace().join("examples").join(rel)).unwrap());
    let (config, csv) = apply(m, text, csv_text.as_deref());
    if let (Some(rel), Some(csv)) = (&csv_rel, &csv) {
        std::fs::write(dir.join(rel), csv).unwrap();
    }
    std::fs::write(dir.join("config.toml"), &config).unwrap();
    let input = format!(
        "{name} with {m:?}\n{config}{}",
        csv.as_deref()
            .map_or(String::new(), |c| format!("\n(csv)\n{}", cut(c, 600)))
    );

    let check = run(&dir, &["check", "config.toml"], &input)?;
    no_panic("check", &check, &input)?;
    let check_code = check.status.code();
    let count = |c: &std::sync::atomic::AtomicUsize| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    count(if check_code == Some(0) {
        &stats.valid
    } else {
        &stats.invalid
    });
    prop_assert!(
        matches!(check_code, Some(0) | Some(2)),
        "check exited {:?}: {}\ninput:\n{}",
        check_code,
        check.stderr,
        input
    );

    let sim = run(
        &dir,
        &[
            "simulate",
            "config.toml",
            "--out",
            "out",
            "--steps",
            "20",
            "--trajectories",
            "2",
            "--record-every",
            "10",
            "--no-progress",
        ],
        &input,
    )?;
    no_panic("simulate", &sim, &input)?;
    // The size overrides can make valid what `check` refused for its size fields.
    let overridden = ["`steps`", "`trajectories`", "`record_every`"]
        .iter()
        .any(|f| check.stderr.contains(f));
    if check_code == Some(2) && !overridden {
        prop_assert_eq!(
            sim.status.code(),
            Some(2),
            "check said invalid, simulate did not exit 2: {}\ninput:\n{}",
            sim.stderr,
            input
        );
    }
    if !sim.status.success() {
        prop_assert!(
            !dir.join("out").exists(),
            "a failed simulate wrote {}\ninput:\n{input}",
            dir.join("out").display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

/// The fuzzed corpus: [`CASES`] mutated examples, see the module docs.
#[test]
fn mutated_configs_and_data_fail_cleanly() {
    let examples = examples();
    assert!(examples.len() >= 10, "{} examples", examples.len());
    let root = std::env::temp_dir().join(format!("quasistatic-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // `QUASISTATIC_FUZZ_CASES` and `QUASISTATIC_FUZZ_SEED` (a byte) run a longer or another
    // corpus by hand; the test suite runs the fixed one.
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let cases = env("QUASISTATIC_FUZZ_CASES").unwrap_or(CASES);
    let seed = env("QUASISTATIC_FUZZ_SEED").map_or(7u8, |s| s as u8);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let stats = Stats::default();
    let t0 = Instant::now();
    let result = runner.run(&(any::<usize>(), mutation()), |(pick, m)| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        case(&stats, &root, n, &examples, pick, &m)
    });
    let load = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "fuzz: {} runs (cases and shrinking steps; {} valid, {} invalid by `check`) in {:.1} s",
        load(&counter),
        load(&stats.valid),
        load(&stats.invalid),
        t0.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Sizes the corpus found that once aborted `check` on a failed allocation (exit 134) or kept
/// it busy for minutes (a pre-training of 2^31 steps) are refused with exit 2, naming the
/// field, before anything is allocated or run.
#[test]
fn oversized_configs_are_refused() {
    let examples = examples();
    let text = |name: &str| {
        examples
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let root = std::env::temp_dir().join(format!("quasistatic-oversized-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::copy(
        workspace().join("examples/data/sparse.csv"),
        root.join("data/sparse.csv"),
    )
    .unwrap();
    let cases = [
        (
            text("two_layer_tanh.toml").replace("\nn = 64", "\nn = 9007199254740992"),
            "`data.n`",
        ),
        (
            text("two_layer_tanh.toml").replace("width = 32", "width = 2147483647"),
            "`model.width`",
        ),
        (
            text("csv_expression.toml").replace("v = 12 }", "v = 17179869184 }"),
            "`model.params.v`",
        ),
        (
            text("valley_nd_momentum.toml")
                .replace("normal_dim = 4", "normal_dim = 4294967296")
                .replace("lambdas = [1.0, 1.5, 2.0, 3.0]", ""),
            "`model.normal_dim`",
        ),
        (
            text("linear2_adam.toml").replace("gd_steps = 5000", "gd_steps = 2147483647"),
            "`start.gd_steps`",
        ),
    ];
    for (config, field) in cases {
        std::fs::write(root.join("config.toml"), &config).unwrap();
        let r = run(&root, &["check", "config.toml"], &config).unwrap();
        assert_eq!(r.status.code(), Some(2), "{}\n{config}", r.stderr);
        assert!(r.stderr.contains(field), "{field}: {}", r.stderr);
    }
    std::fs::remove_dir_all(&root).unwrap();
}
