//! `kind = "valley"` and `kind = "valley_nd"`: `L = 1/2 s(y) sum_i lambda_i x_i^2`, minima on
//! the plane `x = 0`, flatness `s(y)` varying along it.

use serde::{Deserialize, Serialize};

use super::{no_data, ModelKind};
use crate::config::registry::{check_name, KindTable};
use crate::config::{at_least, finite, non_negative, positive, DataConfig};
use crate::error::{Error, Result};
use crate::model::{AnyModel, Profile, Valley};

/// The flatness profile `s(y)` of a valley.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProfileConfig {
    /// `"quadratic"`: `s(y) = 1 + c |y|^2`, flattest at `y = 0`.
    #[default]
    Quadratic,
    /// `"sin2"`: `s(y) = 1 + c sum_j sin^2(y_j)`, flattest at `y_j = k pi`.
    Sin2,
}

impl From<ProfileConfig> for Profile {
    fn from(p: ProfileConfig) -> Self {
        match p {
            ProfileConfig::Quadratic => Profile::Quadratic,
            ProfileConfig::Sin2 => Profile::Sin2,
        }
    }
}

fn default_c() -> f64 {
    1.0
}

fn default_start_y() -> f64 {
    2.0
}

fn default_tangent_dim() -> usize {
    1
}

/// `kind = "valley"`: the planar valley `L = 1/2 s(y) x^2`, its plane rotated by `angle`;
/// the default start is `(x, y) = (0, start_y)` before the rotation. No `[data]`.
///
/// ```toml
/// [model]
/// kind = "valley"
/// profile = "quadratic"
/// c = 1.0
/// angle = 0.0
/// start_y = 2.0
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValleyConfig {
    /// Flatness profile (default `quadratic`).
    #[serde(default)]
    pub profile: ProfileConfig,
    /// Profile coefficient `c >= 0` (default 1).
    #[serde(default = "default_c")]
    pub c: f64,
    /// Rotation of the plane in degrees, finite (default 0).
    #[serde(default)]
    pub angle: f64,
    /// Tangent coordinate `y` of the default start, finite (default 2).
    #[serde(default = "default_start_y")]
    pub start_y: f64,
}

/// Every field at its default (as a `[model]` table with only `kind = "valley"`).
impl Default for ValleyConfig {
    fn default() -> Self {
        ValleyConfig {
            profile: ProfileConfig::default(),
            c: default_c(),
            angle: 0.0,
            start_y: default_start_y(),
        }
    }
}

impl KindTable for ValleyConfig {
    fn explain(table: &toml::Table) -> Option<Error> {
        check_name::<ProfileConfig>(table, "profile", "model.profile")
    }
}

impl ModelKind for ValleyConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        no_data(data, "valley")?;
        let c = non_negative("model.c", self.c)?;
        let angle = finite("model.angle", self.angle)?;
        let mut v = Valley::planar(self.profile.into(), c)
            .with_start_y(finite("model.start_y", self.start_y)?);
        if angle != 0.0 {
            v = v.with_angle(angle.to_radians());
        }
        Ok(AnyModel::Valley(v))
    }
}

/// `kind = "valley_nd"`: `L = 1/2 s(y) sum_i lambda_i x_i^2` with `x` in `R^p` (normal) and
/// `y` in `R^q` (tangent), optionally rotated by a random orthogonal matrix; the default start
/// is `x = 0`, every `y_j = start_y`. No `[data]`.
///
/// ```toml
/// [model]
/// kind = "valley_nd"
/// normal_dim = 4
/// tangent_dim = 2
/// lambdas = [1.0, 1.5, 2.0, 3.0]
/// profile = "sin2"
/// c = 0.5
/// start_y = 1.0
/// rotation_seed = 7
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ValleyNdConfig {
    /// Number `p >= 1` of normal directions (default: the length of `lambdas`, else 1; not
    /// written out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_dim: Option<usize>,
    /// Number `q >= 1` of tangent directions (default 1).
    #[serde(default = "default_tangent_dim")]
    pub tangent_dim: usize,
    /// The normal curvatures `lambda_i > 0`, `normal_dim` of them (default evenly spaced in
    /// `[1, 2]`; not written out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambdas: Option<Vec<f64>>,
    /// Flatness profile (default `quadratic`).
    #[serde(default)]
    pub profile: ProfileConfig,
    /// Profile coefficient `c >= 0` (default 1).
    #[serde(default = "default_c")]
    pub c: f64,
    /// Every tangent coordinate of the default start, finite (default 2).
    #[serde(default = "default_start_y")]
    pub start_y: f64,
    /// Seed of a random rotation of the whole space (default: none, axis-aligned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_seed: Option<u64>,
}

/// Every field at its default (as a `[model]` table with only `kind = "valley_nd"`).
impl Default for ValleyNdConfig {
    fn default() -> Self {
        ValleyNdConfig {
            normal_dim: None,
            tangent_dim: default_tangent_dim(),
            lambdas: None,
            profile: ProfileConfig::default(),
            c: default_c(),
            start_y: default_start_y(),
            rotation_seed: None,
        }
    }
}

impl KindTable for ValleyNdConfig {
    fn explain(table: &toml::Table) -> Option<Error> {
        check_name::<ProfileConfig>(table, "profile", "model.profile")
    }
}

impl ModelKind for ValleyNdConfig {
    fn build(&self, data: Option<&DataConfig>) -> Result<AnyModel> {
        no_data(data, "valley_nd")?;
        let q = at_least("model.tangent_dim", self.tangent_dim, 1)?;
        let lambdas = match &self.lambdas {
            Some(l) => {
                if let Some(p) = self.normal_dim {
                    if p != l.len() {
                        return Err(Error::invalid(
                            "model.lambdas",
                            format!("{} numbers", l.len()),
                            format!("exactly model.normal_dim = {p} numbers"),
                        ));
                    }
                }
                if l.is_empty() {
                    return Err(Error::invalid(
                        "model.lambdas",
                        "[]",
                        "at least one positive number",
                    ));
                }
                for (i, &x) in l.iter().enumerate() {
                    positive(&format!("model.lambdas[{i}]"), x)?;
                }
                l.clone()
            }
            None => {
                let p = at_least("model.normal_dim", self.normal_dim.unwrap_or(1), 1)?;
                let d = p as u128 + q as u128;
                let (numbers, how) = if self.rotation_seed.is_some() {
                    (d * d, "(normal_dim + tangent_dim)^2 rotation entries")
                } else {
                    (d, "normal_dim + tangent_dim parameters")
                };
                super::model_size("model.normal_dim", p, numbers, how)?;
                (0..p)
                    .map(|i| 1.0 + i as f64 / (p.max(2) - 1) as f64)
                    .collect()
            }
        };
        let c = non_negative("model.c", self.c)?;
        let start_y = finite("model.start_y", self.start_y)?;
        // A random rotation is a dense d x d matrix.
        let d = lambdas.len() as u128 + q as u128;
        let (numbers, how) = if self.rotation_seed.is_some() {
            (d * d, "(normal_dim + tangent_dim)^2 rotation entries")
        } else {
            (d, "normal_dim + tangent_dim parameters")
        };
        super::model_size("model.tangent_dim", q, numbers, how)?;
        let mut v = Valley::new(lambdas, q, self.profile.into(), c).with_start_y(start_y);
        if let Some(seed) = self.rotation_seed {
            v = v.with_random_rotation(seed);
        }
        Ok(AnyModel::Valley(v))
    }
}
