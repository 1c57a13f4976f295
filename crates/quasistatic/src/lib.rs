//! # quasistatic
//!
//! Simulate stochastic optimizers (SGD, heavy ball, Nesterov, Adam, AdamW, RMSProp) with real
//! noise on models that have a manifold of minima, and (in later modules) derive their
//! effective dynamics along that manifold by the quasistatic method of THEORY.md.
//!
//! Module map (dependency direction as in the project's style guide):
//! - [`model`]: losses and gradients, generic over the scalar (exact derivatives by num-dual);
//! - [`data`]: synthetic data and CSV loading;
//! - [`noise`]: gradient noise models and their exact covariances;
//! - [`optim`]: optimizers as explicit state + `step`;
//! - [`simulate`]: reproducible parallel ensembles; [`observe`]: observables;
//! - [`config`]: the TOML configuration and its validation;
//! - [`output`], [`plot`]: atomically written CSV / JSON / SVG files.

pub mod bench;
pub mod compare;
pub mod config;
pub mod data;
pub mod derive;
pub mod error;
pub mod lanes;
pub mod manifold;
pub mod model;
pub mod noise;
pub mod observe;
pub mod optim;
pub mod output;
pub mod plot;
pub mod rng;
pub mod run;
pub mod sde;
pub mod simulate;
pub mod stats;
pub mod studies;
pub mod validate;

pub use error::{Error, Result};
