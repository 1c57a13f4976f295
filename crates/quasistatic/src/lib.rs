//! # quasistatic
//!
//! Simulate stochastic optimizers (SGD, heavy ball, Nesterov, Adam, AdamW, RMSProp, Lion) with
//! real noise on models that have a manifold of minima, and derive their effective dynamics
//! along that manifold by the quasistatic method (`docs/theory.md` in the repository).
//!
//! ## Layers
//!
//! Lowest first; a module imports only modules of lower layers (checked by `tests/layers.rs`):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | [`error`], [`engine`], [`linalg`] | errors; the fast engine's leaf (lanes, ISA dispatch, RNG streams, vector draws, capability traits); dense kernels |
//! | 1 | [`data`] | synthetic data; a user's CSV and NumPy (`.npy`, `.npz`) files |
//! | 2 | [`model`] | losses and gradients, generic over the scalar (exact derivatives by num-dual) |
//! | 3 | [`noise`], [`optim`], [`observe`] | gradient noise and its exact covariance; optimizers as explicit state + `step`; observables |
//! | 4 | [`record`], [`manifold`] | what ensembles record; projection, geometry, noise on the manifold |
//! | 5 | [`simulate`], [`derive`], [`stats`] | true dynamics (ensembles); derived dynamics; summaries (neither of the first two knows the other) |
//! | 6 | [`sde`] | the derived manifold SDE |
//! | 7 | [`config`] | the typed TOML configuration and what it builds |
//!
//! Above the core: `quasistatic-studies` (true against derived, the studies, every file a
//! run writes: CSV, JSON, SVG, Markdown, HTML), `quasistatic-bench` (benchmarks) and
//! `quasistatic-cli` (the `quasistatic` binary). The core has no plotting, Markdown or
//! terminal dependency.
//!
//! ## Speed is a capability
//!
//! A [`model::Model`] or [`optim::Optimizer`] written by a user is always simulated correctly.
//! The engine's fast paths are capabilities a type declares: a model's group kernel
//! ([`engine::LaneKernel`], through [`model::Model::lane_kernel`]) and register step
//! ([`engine::SmallLaneKernel`], through [`model::Model::visit`]); an optimizer that acts
//! coordinate by coordinate is an [`engine::CoordinateRule`] (and gets [`optim::Optimizer`]
//! from a blanket implementation), which the engine steps on whole groups. Every fast path
//! gives the bits of the plain one (tested).

pub mod config;
pub mod data;
pub mod derive;
pub mod engine;
pub mod error;
pub mod linalg;
pub mod manifold;
pub mod model;
pub mod noise;
pub mod observe;
pub mod optim;
pub mod record;
pub mod sde;
pub mod simulate;
pub mod stats;

pub use error::{Error, Result};
