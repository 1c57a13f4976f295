//! NumPy and CSV files read into data sets: files NumPy wrote (`tests/fixtures/`, made by
//! `make_numpy_made.py` there), round trips through `write_npy` / `write_npz`, the NumPy copies
//! of `examples/data/sparse.csv`, selection, standardisation, splits, and the errors, each
//! naming where the problem is.

use std::path::{Path, PathBuf};

use quasistatic::data::{
    self, npz_source, prepare, read_csv, read_npy, write_npy, write_npz, Column, Data, Prepare,
    Source, Split,
};
use quasistatic::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn examples_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data")
}

/// A fresh folder in the temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("quasistatic-npy-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn plain(test_fraction: f64) -> Prepare {
    Prepare {
        features: Vec::new(),
        standardize: false,
        split: Split {
            test_fraction,
            shuffle: false,
            seed: 0,
        },
    }
}

fn message<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Data { path, message }) => format!("{}: {message}", path.display()),
        Err(other) => panic!("expected a data error, got {other}"),
        Ok(_) => panic!("expected an error"),
    }
}

fn npz(path: &Path, test: bool, options: &Prepare) -> Result<Data, Error> {
    let pair = test.then_some(("X_test", "y_test"));
    prepare(npz_source(path, "X_train", "y_train", pair)?, options, path)
}

#[test]
fn files_written_by_numpy_are_read_exactly() {
    // make_numpy_made.py: compressed archive, float32 Fortran-order inputs, big-endian int64
    // targets, uint8 held-out inputs, held-out targets as a (2, 1) column.
    let path = fixtures().join("numpy_made.npz");
    let d = npz(&path, true, &plain(0.0)).unwrap();
    assert_eq!((d.train.n, d.train.p), (4, 3));
    let expected: Vec<f64> = (0..12).map(|k| k as f64 / 8.0).collect();
    assert_eq!(d.train.x, expected);
    assert_eq!(d.train.y, [1.0, -2.0, 3.0, -4.0]);
    let t = d.test.unwrap();
    assert_eq!(t.x, [1.0, 2.0, 3.0, 250.0, 0.0, 7.0]);
    assert_eq!(t.y, [0.5, -1.5]);

    let table = read_npy(&fixtures().join("numpy_made_f32.npy")).unwrap();
    assert_eq!(table.dtype, "<f4");
    assert_eq!(table.shape, [2, 3]);
    assert_eq!(table.values, [1.5, -2.0, 0.25, 3.0, 4.5, -1.0]);
}

#[test]
fn written_files_read_back_the_numbers_written() {
    let dir = TempDir::new("roundtrip");
    let x: Vec<f64> = (0..15)
        .map(|k| (k as f64 * 0.1).sin() * 1e3 + 1e-300)
        .collect();
    let y: Vec<f64> = vec![0.1, -0.2, f64::MAX, f64::MIN_POSITIVE, -0.0];
    let p = dir.0.join("a.npz");
    write_npz(&p, &[("X_train", &[5, 3], &x), ("y_train", &[5], &y)]).unwrap();
    let d = npz(&p, false, &plain(0.0)).unwrap();
    assert_eq!(d.train.x, x);
    assert_eq!(d.train.y, y);
    let q = dir.0.join("t.npy");
    write_npy(&q, &[5, 3], &x).unwrap();
    let a = read_npy(&q).unwrap();
    assert_eq!(
        (a.shape.as_slice(), a.values.as_slice()),
        (&[5, 3][..], &x[..])
    );
    // Written twice, the same bytes (no timestamps).
    let p2 = dir.0.join("b.npz");
    write_npz(&p2, &[("X_train", &[5, 3], &x), ("y_train", &[5], &y)]).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&p2).unwrap());
}

/// `examples/data/sparse.npz` and `sparse.npy` are `sparse.csv` in NumPy form: the archive has
/// the first 24 rows as `x_train`/`y_train` and the last 8 as `x_test`/`y_test`, the array the
/// whole table (target last). This test fails if the committed files are not exactly what
/// `write_npz`/`write_npy` make of the CSV; `QUASISTATIC_REGENERATE=1 cargo test -p quasistatic
/// --test numpy_files` rewrites them.
#[test]
fn example_numpy_files_are_the_csv_file() {
    let csv = examples_data().join("sparse.csv");
    let table = read_csv(&csv).unwrap();
    let (n, cols) = (table.rows, table.cols);
    assert_eq!((n, cols), (32, 13));
    let split = load_csv_split(&csv);
    let (train, test) = (&split.train, split.test.as_ref().unwrap());
    let dir = TempDir::new("examples");
    let npz_path = dir.0.join("sparse.npz");
    write_npz(
        &npz_path,
        &[
            ("x_train", &[train.n, train.p], &train.x),
            ("y_train", &[train.n], &train.y),
            ("x_test", &[test.n, test.p], &test.x),
            ("y_test", &[test.n], &test.y),
        ],
    )
    .unwrap();
    let npy_path = dir.0.join("sparse.npy");
    write_npy(&npy_path, &[n, cols], &table.values).unwrap();
    for (made, name) in [(&npz_path, "sparse.npz"), (&npy_path, "sparse.npy")] {
        let committed = examples_data().join(name);
        let bytes = std::fs::read(made).unwrap();
        if std::env::var_os("QUASISTATIC_REGENERATE").is_some() {
            std::fs::write(&committed, &bytes).unwrap();
        }
        assert!(
            std::fs::read(&committed).ok() == Some(bytes),
            "examples/data/{name} is not what the CSV gives: regenerate it (see this test)"
        );
    }
    // And read back, the same data as the CSV.
    let from_npz = prepare(
        npz_source(
            &examples_data().join("sparse.npz"),
            "x_train",
            "y_train",
            Some(("x_test", "y_test")),
        )
        .unwrap(),
        &plain(0.0),
        &npz_path,
    )
    .unwrap();
    assert_eq!(from_npz.train, split.train);
    assert_eq!(from_npz.test, split.test);
}

fn load_csv_split(csv: &Path) -> Data {
    data::load_csv(csv, "y", 0.25).unwrap()
}

/// A 6 x 4 table: columns a, b, y, c with distinct values.
fn small_table() -> String {
    let mut s = String::from("a,b,y,c\n");
    for i in 0..6 {
        let i = i as f64;
        s += &format!("{},{},{},{}\n", i * i, 2.0 - i, 10.0 + i, (i * 0.7).cos());
    }
    s
}

#[test]
fn features_are_selected_by_name_or_index_in_the_order_given() {
    let dir = TempDir::new("select");
    let p = dir.file("t.csv", small_table().as_bytes());
    let table = read_csv(&p).unwrap();
    let mut options = plain(0.0);
    options.features = vec![Column::Name("c".into()), Column::Index(0)];
    let source = Source::Table {
        table: table.clone(),
        target: Column::Index(-2),
    };
    let d = prepare(source, &options, &p).unwrap();
    assert_eq!(d.train.p, 2);
    assert_eq!(d.train.row(3), &[(3.0f64 * 0.7).cos(), 9.0]);
    assert_eq!(d.train.y[3], 13.0);
    // The same table as a .npy array (no names): indices only.
    let q = dir.0.join("t.npy");
    write_npy(&q, &[6, 4], &table.values).unwrap();
    let arr = data::npy_table(read_npy(&q).unwrap(), "", &q).unwrap();
    options.features = vec![Column::Index(3), Column::Index(-4)];
    let e = prepare(
        Source::Table {
            table: arr,
            target: Column::Index(2),
        },
        &options,
        &q,
    )
    .unwrap();
    assert_eq!((e.train.x, e.train.y), (d.train.x, d.train.y));
}

#[test]
fn standardisation_uses_training_rows_only() {
    let dir = TempDir::new("standardize");
    let p = dir.file("t.csv", small_table().as_bytes());
    let mut options = plain(1.0 / 3.0);
    options.standardize = true;
    let source = Source::Table {
        table: read_csv(&p).unwrap(),
        target: Column::Name("y".into()),
    };
    let d = prepare(source, &options, &p).unwrap();
    let raw = data::load_csv(&p, "y", 1.0 / 3.0).unwrap();
    let (test, raw_test) = (d.test.unwrap(), raw.test.unwrap());
    assert_eq!((d.train.n, test.n), (4, 2));
    // Independently: nalgebra's column means and population variances of the raw train rows.
    let m = nalgebra::DMatrix::from_row_slice(4, 3, &raw.train.x);
    for j in 0..3 {
        let col = m.column(j);
        let (mean, var) = (col.mean(), col.variance());
        for (ds, raw_ds) in [(&d.train, &raw.train), (&test, &raw_test)] {
            for i in 0..ds.n {
                let want = (raw_ds.row(i)[j] - mean) / var.sqrt();
                assert!((ds.row(i)[j] - want).abs() < 1e-12, "{i},{j}");
            }
        }
    }
    // Targets untouched.
    assert_eq!(d.train.y, raw.train.y);
    assert_eq!(test.y, raw_test.y);
    // Held-out rows are not at mean 0: their scaling is the training rows'.
    let test_mean: f64 = (0..test.n).map(|i| test.row(i)[0]).sum::<f64>() / 2.0;
    assert!(test_mean.abs() > 0.5, "{test_mean}");
}

#[test]
fn shuffled_splits_are_deterministic_in_the_seed() {
    let n = 40;
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let table = |x: &[f64]| data::Table {
        names: None,
        rows: n,
        cols: 1,
        values: x.to_vec(),
        label: String::new(),
    };
    let run = |shuffle: bool, seed: u64| {
        let options = Prepare {
            features: Vec::new(),
            standardize: false,
            split: Split {
                test_fraction: 0.25,
                shuffle,
                seed,
            },
        };
        let source = Source::Arrays {
            x: table(&x),
            y: x.iter().map(|v| -v).collect(),
            test: None,
        };
        prepare(source, &options, Path::new("mem")).unwrap()
    };
    let a = run(true, 7);
    let b = run(true, 7);
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    let c = run(true, 8);
    assert_ne!(a.test, c.test);
    let test = a.test.unwrap();
    assert_eq!((a.train.n, test.n), (30, 10));
    // Every row once, in file order within each part, each target with its row.
    let mut all: Vec<f64> = a.train.x.iter().chain(&test.x).copied().collect();
    assert!(a.train.x.windows(2).all(|w| w[0] < w[1]));
    assert!(test.x.windows(2).all(|w| w[0] < w[1]));
    assert!(a.train.x.iter().zip(&a.train.y).all(|(x, y)| *y == -x));
    all.sort_by(f64::total_cmp);
    assert_eq!(all, x);
    // Not the last rows.
    assert_ne!(test.x, x[30..]);
    // Without shuffle: the last rows.
    assert_eq!(run(false, 7).test.unwrap().x, x[30..]);
}

#[test]
fn numpy_errors_name_the_array_the_row_and_the_column() {
    let dir = TempDir::new("errors");
    let p = dir.0.join("a.npz");
    let mut x = vec![1.0; 6];
    x[5] = f64::NAN;
    write_npz(
        &p,
        &[
            ("X_train", &[3, 2], &x),
            ("y_train", &[2], &[1.0, 2.0]),
            ("flat", &[6], &[0.0; 6]),
            ("y_inf", &[3], &[0.0, f64::INFINITY, 0.0]),
            ("good", &[3, 2], &[0.0; 6]),
            ("y3", &[3], &[0.0; 3]),
        ],
    )
    .unwrap();
    let m = message(npz_source(&p, "X_train", "y_train", None));
    assert!(
        m.contains("array `X_train`") && m.contains("row 2, column 1") && m.contains("NaN"),
        "{m}"
    );
    let m = message(npz_source(&p, "y_inf", "y_inf", None));
    assert!(
        m.contains("a 1-D array (shape (3,)) where a 2-D one is needed"),
        "{m}"
    );
    let m = message(npz_source(&p, "good", "y_inf", None));
    assert!(m.contains("array `y_inf`: row 1: inf"), "{m}");
    let m = message(npz_source(&p, "X_test", "y_train", None));
    assert!(
        m.contains("no array named `X_test`") && m.contains("X_train, flat, good, y3"),
        "{m}"
    );
    let m = message(prepare(
        npz_source(&p, "good", "y_train", None).unwrap(),
        &plain(0.0),
        &p,
    ));
    assert!(m.contains("3 rows but the targets have 2"), "{m}");
    let m = message(npz_source(&p, "good", "flat", Some(("X_train", "y3"))));
    assert!(m.contains("array `X_train`") && m.contains("NaN"), "{m}");
    // Held-out columns must match, and a held-out set excludes test_fraction.
    write_npz(
        &p,
        &[
            ("x", &[3, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            ("y", &[3], &[0.0; 3]),
            ("xt", &[1, 3], &[0.0; 3]),
            ("yt", &[1], &[0.0]),
        ],
    )
    .unwrap();
    let m = message(prepare(
        npz_source(&p, "x", "y", Some(("xt", "yt"))).unwrap(),
        &plain(0.0),
        &p,
    ));
    assert!(
        m.contains("array `xt` has 3 columns but array `x` has 2"),
        "{m}"
    );
    let m = message(prepare(
        npz_source(&p, "x", "y", Some(("x", "y"))).unwrap(),
        &plain(0.5),
        &p,
    ));
    assert!(
        m.contains("test_fraction 0.5") && m.contains("own held-out rows"),
        "{m}"
    );
    // Columns of an array without names.
    let mut o = plain(0.0);
    o.features = vec![Column::Index(2)];
    let m = message(prepare(npz_source(&p, "x", "y", None).unwrap(), &o, &p));
    assert!(
        m.contains("features[0]: feature column 2 does not exist") && m.contains("0..=1"),
        "{m}"
    );
    o.features = vec![Column::Name("a".into())];
    let m = message(prepare(npz_source(&p, "x", "y", None).unwrap(), &o, &p));
    assert!(m.contains("`a`") && m.contains("no column names"), "{m}");
    // A constant feature cannot be standardised.
    o.features = Vec::new();
    o.standardize = true;
    write_npz(
        &p,
        &[
            ("x", &[2, 2], &[1.0, 3.0, 1.0, 4.0]),
            ("y", &[2], &[0.0; 2]),
        ],
    )
    .unwrap();
    let m = message(prepare(npz_source(&p, "x", "y", None).unwrap(), &o, &p));
    assert!(m.contains("feature column 0 is constant"), "{m}");
}

#[test]
fn unreadable_and_empty_files_are_named() {
    let dir = TempDir::new("unreadable");
    let missing = dir.0.join("none.npz");
    let m = message(npz_source(&missing, "x", "y", None));
    assert!(
        m.contains("none.npz") && m.contains("file not found"),
        "{m}"
    );
    let m = message(read_npy(&dir.0.join("none.npy")));
    assert!(m.contains("none.npy: file not found"), "{m}");
    let empty = dir.file("e.npy", b"");
    assert!(message(read_npy(&empty)).contains("e.npy: file is empty"));
    let csv_as_npy = dir.file("c.npy", b"a,b\n1,2\n");
    assert!(message(read_npy(&csv_as_npy)).contains("not a .npy file"));
    let not_zip = dir.file("n.npz", b"not a zip archive at all");
    let m = message(npz_source(&not_zip, "x", "y", None));
    assert!(
        m.contains("n.npz: not a readable .npz (zip) archive"),
        "{m}"
    );
    let empty_zip = dir.file("z.npz", b"");
    assert!(message(npz_source(&empty_zip, "x", "y", None)).contains("z.npz"));
    // Every truncation of an archive is an error, never a panic.
    let whole = fixtures().join("numpy_made.npz");
    let bytes = std::fs::read(&whole).unwrap();
    for cut in (0..bytes.len()).step_by(7) {
        let p = dir.file("cut.npz", &bytes[..cut]);
        let r = npz_source(&p, "X_train", "y_train", Some(("X_test", "y_test")));
        assert!(r.is_err(), "cut at {cut}");
    }
    // A folder is unreadable as a file.
    assert!(message(read_npy(&dir.0)).contains("cannot read file"));
    let m = message(read_csv(&dir.file("b.csv", &[0xff, 0xfe, b'\n'])));
    assert!(m.contains("not UTF-8"), "{m}");
}

#[test]
fn csv_errors_name_the_line_and_column() {
    let dir = TempDir::new("csv");
    let ragged = dir.file("r.csv", b"a,b,y\n1,2,3\n4,5,6,7\n");
    let m = message(read_csv(&ragged));
    assert!(m.contains("r.csv: line 3 has 4 cells, expected 3"), "{m}");
    let nan = dir.file("n.csv", b"a,b,y\n1,NaN,3\n");
    let m = message(read_csv(&nan));
    assert!(
        m.contains("line 2, column `b`: `NaN` is not a finite number"),
        "{m}"
    );
    let text = dir.file("t.csv", b"a,b,y\n1,2,3\n1,two,3\n");
    assert!(message(read_csv(&text)).contains("line 3, column `b`: cannot parse `two`"));
    let ok = dir.file("ok.csv", small_table().as_bytes());
    let source = |target: Column| Source::Table {
        table: read_csv(&ok).unwrap(),
        target,
    };
    let m = message(prepare(source(Column::Name("z".into())), &plain(0.0), &ok));
    assert!(
        m.contains("target column `z` not found; the columns are: a, b, y, c"),
        "{m}"
    );
    let m = message(prepare(source(Column::Index(4)), &plain(0.0), &ok));
    assert!(
        m.contains("target column 4 does not exist") && m.contains("-4..=-1"),
        "{m}"
    );
    let mut o = plain(0.0);
    o.features = vec![Column::Name("a".into()), Column::Name("y".into())];
    let m = message(prepare(source(Column::Name("y".into())), &o, &ok));
    assert!(m.contains("features[1] = `y` is the target column"), "{m}");
    o.features = vec![Column::Name("a".into()), Column::Index(0)];
    let m = message(prepare(source(Column::Name("y".into())), &o, &ok));
    assert!(
        m.contains("features[1] = 0: column `a` is already a feature"),
        "{m}"
    );
}

#[test]
fn tables_built_by_hand_are_checked_not_panicked_on() {
    let table = data::Table {
        names: Some(vec!["a".into()]),
        rows: 2,
        cols: 2,
        values: vec![1.0; 3],
        label: String::new(),
    };
    let source = Source::Table {
        table,
        target: Column::Index(0),
    };
    let m = message(prepare(source, &plain(0.0), Path::new("mem")));
    assert!(
        m.contains("3 values and 1 names for 2 rows of 2 columns"),
        "{m}"
    );
}
