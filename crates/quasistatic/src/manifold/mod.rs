//! The manifold of minima near a point: projection `Phi`, local geometry, and the noise
//! covariance restricted to it (docs/theory.md sections 1 and 6).
//!
//! - [`projection`]: `Phi(theta)`, gradient flow finished by normal Newton steps;
//! - [`geometry`]: `H`, its normal rank and gap, `P_T`, `P_N`, `H^+` (dense or low-rank via the
//!   Jacobian), optionally in Adam's metric `w = D^{-1/2} theta`;
//! - [`noise`]: `Sigma(phi)` as an operator on thin matrices, its blocks, `diag Sigma(theta)`;
//!
//! The optimizer-specific parts (Lyapunov equilibria, drift, Adam's preconditioner) live in
//! `derive`, above this module; the dense kernels in [`crate::linalg`].

pub mod geometry;
pub mod noise;
pub mod projection;

pub use geometry::{Curvature, Geometry, GeometryPath, RankOptions};
pub use noise::{covariance_diagonal, CovarianceOperator};
pub use projection::{project, Finisher, NormalSpace, Projection, ProjectionOptions};
