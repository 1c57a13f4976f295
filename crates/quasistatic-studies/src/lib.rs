//! # quasistatic-studies
//!
//! The layer above the `quasistatic` core: true against derived dynamics and the studies,
//! and every file a run writes.
//!
//! - [`output`], [`plot`]: atomically written CSV / JSON / SVG / Markdown files of a run;
//! - [`progress`]: the terminal progress bar a run reports to;
//! - [`run`]: `simulate` from a configuration into a folder;
//! - [`staging`]: transactional output folders (written beside `--out`, renamed into place);
//! - [`compare`], [`validate`]: gaps between true and derived ensembles, side-by-side runs,
//!   eta sweeps; [`diffusion`]: the variance growth of each observable, true against derived;
//! - [`studies`]: the reproducible studies behind `quasistatic reproduce`.
//!
//! The core crate has no plotting, Markdown or terminal dependency; this one has them all.

pub mod compare;
pub mod diffusion;
pub mod output;
pub mod plot;
pub mod progress;
pub mod run;
pub mod staging;
pub mod studies;
pub mod validate;

pub use quasistatic::{Error, Result};
