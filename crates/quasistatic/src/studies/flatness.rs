//! Study (in progress).
use std::path::Path;

use super::{Scale, StudyReport};
use crate::error::Result;

/// Run the study.
pub fn run(scale: Scale, dir: &Path, link: &str) -> Result<StudyReport> {
    let _ = (scale, dir, link);
    Err(crate::Error::Numerical("study not implemented yet".into()))
}
