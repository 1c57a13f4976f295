//! Output files (temporary stub until the output module lands).
use std::path::{Path, PathBuf};

use crate::simulate::EnsembleResult;

/// Facts about a run written next to its results.
pub struct RunMeta {
    /// Title.
    pub title: String,
    /// Resolved config.
    pub config_toml: String,
    /// Key-value facts.
    pub description: Vec<(String, String)>,
    /// Whether to write trajectories.csv.
    pub save_trajectories: bool,
}

/// Atomic write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    std::fs::write(path, bytes).map_err(|e| crate::Error::io(path.display().to_string(), e))
}

/// Write everything.
pub fn write_ensemble(
    dir: &Path,
    result: &EnsembleResult,
    meta: &RunMeta,
) -> crate::Result<Vec<PathBuf>> {
    let _ = (result, meta.save_trajectories, &meta.description);
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("mkdir", e))?;
    let p = dir.join("config.toml");
    write_atomic(&p, meta.config_toml.as_bytes())?;
    Ok(vec![p])
}
