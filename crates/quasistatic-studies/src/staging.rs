//! Transactional output folders: a run writes into a staging folder beside its `--out` and
//! renames it into place when it has finished, so `--out` holds one complete run or nothing
//! new.
//!
//! - [`Staging::new`] checks the output path before any work: it must not be a file, its
//!   parent must be creatable and writable (the staging folder is created there, which
//!   proves it), and an existing folder is replaced only if it is empty or was written by
//!   quasistatic (it holds the marker file [`MARKER`]); any other folder is refused, so a
//!   mistyped `--out ~` cannot delete a user's files.
//! - [`Staging::commit`] moves an existing output folder aside, renames the staging folder
//!   to `--out` and deletes the old one: the replacement is whole (no stale file of an earlier
//!   run survives) and a reader sees the old folder or the new one.
//! - Dropping an uncommitted [`Staging`] (an error, an interruption) removes the staging
//!   folder. [`remove_all`] does the same for every live staging folder of the process, for a
//!   Ctrl-C handler that must exit at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use quasistatic::{Error, Result};

/// The file that marks a folder as a quasistatic output folder (replaceable by a rerun).
pub const MARKER: &str = ".quasistatic-output";

/// Staging folders alive in this process (for [`remove_all`]).
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Distinguishes staging folders of one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A staging folder for the output folder `out`; see the module documentation.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    committed: bool,
    /// Parent folders this staging created (removed again, if empty, when it is dropped).
    created: Vec<PathBuf>,
    /// A checkpointed run's folder: dropped uncommitted, it stays if it holds a checkpoint.
    persistent: bool,
}

/// The ancestors of `parent` that do not exist yet, innermost first.
fn missing_ancestors(parent: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut p = parent.to_path_buf();
    while !p.as_os_str().is_empty() && !p.exists() {
        missing.push(p.clone());
        match p.parent() {
            Some(q) => p = q.to_path_buf(),
            None => break,
        }
    }
    missing
}

/// `out`'s parent folder (`.` for a bare name) and its final component.
fn split(out: &Path) -> Result<(PathBuf, String)> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .ok_or_else(|| {
            Error::invalid(
                "--out",
                out.display(),
                "a folder path that ends in a folder name (not `.`, `..` or `/`)",
            )
        })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// Why `out` may not be replaced, if it may not.
fn check_replaceable(out: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot inspect {}", out.display()), e)),
    };
    if !meta.is_dir() {
        return Err(Error::invalid(
            "--out",
            out.display(),
            "a folder (this path is a file; choose another path or remove the file)",
        ));
    }
    let mut entries = fs::read_dir(out)
        .map_err(|e| Error::io(format!("cannot read folder {}", out.display()), e))?;
    let empty = entries.next().is_none();
    if empty || out.join(MARKER).is_file() {
        return Ok(());
    }
    Err(Error::invalid(
        "--out",
        out.display(),
        format!(
            "a new or empty folder, or one written by quasistatic (it holds {MARKER}); this \
             folder holds other files, which a run would replace: choose another path"
        ),
    ))
}

impl Staging {
    /// Check `out` and create its staging folder `.<name>.staging-<pid>-<n>` beside it (the
    /// parent folders are created if missing). Errors name the path and the reason.
    pub fn new(out: &Path) -> Result<Staging> {
        let (parent, name) = split(out)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".{name}.staging-{}-{n}", std::process::id()));
        Self::create(out, dir, true)
    }

    /// A staging folder with a given `name` beside `out` (e.g. `<out>.partial` for a run with
    /// checkpoints, which must be found again by a later process): checked as [`Staging::new`];
    /// an existing folder of that name must be a quasistatic staging folder and is replaced.
    /// Dropped uncommitted it is removed unless it holds a checkpoint, and [`remove_all`]
    /// leaves it (a hard exit keeps the last checkpoint in it).
    pub fn new_named(out: &Path, name: &str) -> Result<Staging> {
        let (parent, _) = split(out)?;
        Self::create(out, parent.join(name), false)
    }

    /// Check `out` (and an existing `dir`), create the missing parent folders and the staging
    /// folder `dir` (replacing an earlier staging folder of that name) with its marker.
    fn create(out: &Path, dir: PathBuf, live: bool) -> Result<Staging> {
        let (parent, _) = split(out)?;
        check_replaceable(out)?;
        check_replaceable(&dir)?;
        let created = missing_ancestors(&parent);
        fs::create_dir_all(&parent).map_err(|e| {
            Error::io(
                format!(
                    "cannot create the parent folder {} of --out",
                    parent.display()
                ),
                e,
            )
        })?;
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot remove the old {}", dir.display()), e))?;
        }
        let mut s = Self::register(out, dir, live);
        s.created = created;
        fs::create_dir(&s.dir).map_err(|e| {
            Error::io(
                format!(
                    "cannot write into {} (the staging folder {} for --out could not be created)",
                    parent.display(),
                    s.dir.display()
                ),
                e,
            )
        })?;
        fs::write(
            s.dir.join(MARKER),
            b"written by quasistatic; a rerun replaces this folder\n",
        )
        .map_err(|e| Error::io(format!("cannot write into {}", s.dir.display()), e))?;
        Ok(s)
    }

    /// Take over the existing staging folder `dir` (a run's kept `<out>.partial`) for `out`.
    pub fn adopt(dir: &Path, out: &Path) -> Result<Staging> {
        split(out)?;
        check_replaceable(out)?;
        if !dir.join(MARKER).is_file() {
            return Err(Error::invalid(
                "--resume",
                dir.display(),
                format!("a staging folder written by quasistatic (it holds {MARKER})"),
            ));
        }
        Ok(Self::register(out, dir.to_path_buf(), false))
    }

    /// A staging folder; `live` ones are removed by [`remove_all`] (a checkpointed run's
    /// `<out>.partial` is not: its last checkpoint must survive a hard exit).
    fn register(out: &Path, dir: PathBuf, live: bool) -> Staging {
        if live {
            LIVE.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(dir.clone());
        }
        Staging {
            out: out.to_path_buf(),
            dir,
            committed: false,
            created: Vec::new(),
            persistent: !live,
        }
    }

    /// Leave the staging folder on disk (a checkpointed run that was interrupted) and return
    /// its path.
    pub fn keep(mut self) -> PathBuf {
        self.committed = true;
        unregister(&self.dir);
        self.dir.clone()
    }

    /// The staging folder: write the run's files here.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The output folder this staging folder becomes.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The path a file `name` will have once committed (for messages and reports).
    pub fn final_path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// Replace the output folder by the staging folder: an existing output folder is checked
    /// again, moved aside and deleted after the rename. Returns the output folder.
    pub fn commit(mut self) -> Result<PathBuf> {
        check_replaceable(&self.out)?;
        let (parent, name) = split(&self.out)?;
        let old = parent.join(format!(
            ".{name}.replaced-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let had_old = self.out.exists();
        if had_old {
            fs::rename(&self.out, &old).map_err(|e| {
                Error::io(
                    format!("cannot move the previous {} aside", self.out.display()),
                    e,
                )
            })?;
        }
        if let Err(e) = fs::rename(&self.dir, &self.out) {
            if had_old {
                let _ = fs::rename(&old, &self.out);
            }
            return Err(Error::io(
                format!(
                    "cannot rename {} to {}",
                    self.dir.display(),
                    self.out.display()
                ),
                e,
            ));
        }
        self.committed = true;
        unregister(&self.dir);
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(self.out.clone())
    }
}

fn unregister(dir: &Path) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|d| d != dir);
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            if self.persistent && self.dir.join(crate::output::CHECKPOINT).is_file() {
                return;
            }
            let _ = fs::remove_dir_all(&self.dir);
            unregister(&self.dir);
            for p in &self.created {
                // Only empty folders go; stop at the first that is not.
                if fs::remove_dir(p).is_err() {
                    break;
                }
            }
        }
    }
}

/// Remove every uncommitted staging folder of this process (for a signal handler about to
/// exit). Retries a few times, since a writer may still be creating files in one.
pub fn remove_all() {
    let dirs: Vec<PathBuf> = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for d in dirs {
        for _ in 0..5 {
            if fs::remove_dir_all(&d).is_ok() || !d.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qs-staging-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn commit_replaces_a_previous_output_whole() {
        let root = tmp("replace");
        let out = root.join("run");
        let s = Staging::new(&out).unwrap();
        fs::write(s.path().join("a.txt"), "first").unwrap();
        fs::write(s.path().join("stale.txt"), "x").unwrap();
        s.commit().unwrap();
        let s = Staging::new(&out).unwrap();
        fs::write(s.path().join("a.txt"), "second").unwrap();
        // Until the commit, the old output is untouched.
        assert_eq!(fs::read_to_string(out.join("a.txt")).unwrap(), "first");
        s.commit().unwrap();
        assert_eq!(fs::read_to_string(out.join("a.txt")).unwrap(), "second");
        assert!(!out.join("stale.txt").exists());
        let left: Vec<_> = fs::read_dir(&root).unwrap().collect();
        assert_eq!(left.len(), 1, "only the output folder remains: {left:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dropped_staging_leaves_nothing_and_files_are_refused() {
        let root = tmp("drop");
        let out = root.join("run");
        {
            let s = Staging::new(&out).unwrap();
            fs::write(s.path().join("a.txt"), "x").unwrap();
        }
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        // Parent folders it created go too.
        drop(Staging::new(&root.join("p/q/run")).unwrap());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        let file = root.join("f.txt");
        fs::write(&file, "x").unwrap();
        let e = Staging::new(&file).unwrap_err().to_string();
        assert!(e.contains("--out") && e.contains("file"), "{e}");
        // A folder of other files is refused, an empty one accepted.
        let user = root.join("mine");
        fs::create_dir(&user).unwrap();
        fs::write(user.join("notes.txt"), "keep").unwrap();
        let e = Staging::new(&user).unwrap_err().to_string();
        assert!(e.contains("other files"), "{e}");
        assert_eq!(fs::read_to_string(user.join("notes.txt")).unwrap(), "keep");
        fs::create_dir(root.join("empty")).unwrap();
        Staging::new(&root.join("empty")).unwrap().commit().unwrap();
        assert!(root.join("empty").join(MARKER).is_file());
        fs::remove_dir_all(&root).unwrap();
    }
}
