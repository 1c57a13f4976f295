//! The rotation study's measurements: manifold speeds of SGD and Adam, true and derived, on
//! the rotated planar valley and on the N-dimensional valley, without writing files.
//!
//! From the fixed manifold point `y = 2`, the mean displacement of the manifold coordinate
//! toward the flat point per optimizer step over a window, `speed = (y(0) - E y(T)) / T`, for
//! the true optimizer (an ensemble started in the normal equilibrium around the point and
//! observed at its projection `Phi(theta)`, as in [`crate::validate`]), with a 95% interval
//! from the ensemble, and for the derived manifold dynamics of [`quasistatic::derive`]
//! integrated over the same window. The window of each (optimizer, geometry) is chosen so
//! that the derived dynamics moves `y` by about a given displacement.

use serde::Serialize;

use super::super::{mean_ci, Scale};
use crate::validate::{paired_runs, PairedSpec};
use quasistatic::derive::{derive, DeriveOptions};
use quasistatic::error::{Error, Result};
use quasistatic::model::{Model, Profile, Valley};
use quasistatic::noise::NoiseModel;
use quasistatic::observe::Observable;
use quasistatic::optim::{Adam, AnyOptimizer, Schedule, Sgd};

/// One measured manifold speed.
#[derive(Clone, Debug, Serialize)]
pub struct SpeedPoint {
    /// Optimizer (`sgd` or `adam`).
    pub optimizer: String,
    /// Label of the geometry (angle in degrees, or dimension and rotation).
    pub case: String,
    /// Angle in degrees (planar valley) or dimension `d` (N-dimensional valley).
    pub x: f64,
    /// Rotation seed (`None`: axis-aligned or planar).
    pub seed: Option<u64>,
    /// Angle in degrees between the manifold's tangent and the nearest parameter axis
    /// (0: axis-aligned, 45: as far from the axes as a planar tangent can be).
    pub axis_angle: f64,
    /// Derived speed at the start point, `-b_y` per optimizer step.
    pub derived_initial: f64,
    /// Window `T` in optimizer steps.
    pub window: u64,
    /// True speed `(y(0) - E y(T)) / T`: mean over trajectories.
    pub true_speed: f64,
    /// Its 95% half-width.
    pub true_ci: f64,
    /// Derived speed over the same window.
    pub derived_speed: f64,
    /// `(derived - true) / true`.
    pub relative_gap: f64,
    /// Adam: `tau_x / tau_v` at the start.
    pub tau_x_over_tau_v: Option<f64>,
    /// Normal relaxation time over time to drift a unit, at the start.
    pub separation_ratio: f64,
    /// Adam: `sqrt(v)` per coordinate at the start.
    pub sqrt_v: Option<Vec<f64>>,
    /// Adam: number of coordinates with `sqrt(v) <= eps`.
    pub eps_dominated: usize,
    /// Trajectories that diverged (true ensemble).
    pub divergences: usize,
    /// Wall time of both runs (s).
    pub seconds: f64,
    /// The configuration whose `quasistatic compare` reruns this point's true and derived
    /// ensembles (written as `runs/<name>/config.toml`; not in the JSON).
    #[serde(skip)]
    pub config: String,
}

/// Settings shared by every speed measurement of the study.
struct Setup {
    trajectories: usize,
    /// Target displacement of the derived dynamics over the window.
    displacement: f64,
    /// Longest window.
    max_window: u64,
    seed: u64,
}

/// Measure the manifold speed of `optimizer` on `model` from `y = y0` along tangent 0.
fn speed(
    model: &Valley,
    model_toml: &str,
    noise: &NoiseModel,
    optimizer: &AnyOptimizer,
    case: (&str, f64, Option<u64>),
    y0: f64,
    setup: &Setup,
) -> Result<SpeedPoint> {
    let t0 = std::time::Instant::now();
    let mut z = vec![0.0; model.dim()];
    z[model.normal_dim()] = y0;
    let start = model.to_theta(&z);
    let mut e = vec![0.0; model.dim()];
    e[model.normal_dim()] = 1.0;
    let tangent = model.to_theta(&e);
    let axis_angle = tangent
        .iter()
        .map(|t| t.abs())
        .fold(0.0, f64::max)
        .min(1.0)
        .acos()
        .to_degrees();
    let probe = derive(model, noise, optimizer, &start, &DeriveOptions::default())?;
    let b = probe
        .drift_manifold_coordinates
        .as_ref()
        .map(|v| -v[0])
        .ok_or_else(|| Error::Numerical("the valley has manifold coordinates".into()))?;
    let records = 10u64;
    let raw = (setup.displacement / b.abs().max(1e-12)).min(setup.max_window as f64);
    let window = (((raw / records as f64).round() as u64).max(1)) * records;
    let paired = paired_runs(
        model,
        noise,
        optimizer,
        &start,
        &PairedSpec {
            steps: window,
            record_every: window / records,
            trajectories: setup.trajectories,
            seed: setup.seed,
            observables: vec![Observable::ManifoldCoordinate(0)],
            h: None,
            adam: None,
            max_loss: 1e8,
            progress: false,
        },
    )?;
    let last = paired.truth.steps.len() - 1;
    let per_traj: Vec<f64> = (0..paired.truth.trajectories)
        .filter_map(|j| {
            let a = paired.truth.get(j, 0, 0)?;
            let e = paired.truth.get(j, last, 0)?;
            Some((a - e) / window as f64)
        })
        .collect();
    let (true_speed, true_ci) = mean_ci(&per_traj);
    let dy = paired.derived.column(last, 0);
    let derived_end = dy.iter().sum::<f64>() / dy.len() as f64;
    let derived_speed = (y0 - derived_end) / window as f64;
    let pre = paired.start.preconditioner.as_ref();
    Ok(SpeedPoint {
        optimizer: optimizer.name().to_string(),
        case: case.0.to_string(),
        x: case.1,
        seed: case.2,
        axis_angle,
        derived_initial: b,
        window,
        true_speed,
        true_ci,
        derived_speed,
        relative_gap: (derived_speed - true_speed) / true_speed,
        tau_x_over_tau_v: paired.start.diagnostics.tau_x_over_tau_v,
        separation_ratio: paired.start.diagnostics.separation_ratio,
        sqrt_v: pre.map(|p| p.v.iter().map(|v| v.sqrt()).collect()),
        eps_dominated: pre.map_or(0, |p| p.eps_dominated.len()),
        divergences: paired.truth.divergences.len(),
        seconds: t0.elapsed().as_secs_f64(),
        config: point_config(model_toml, optimizer, &start, window, records, setup),
    })
}

/// `{x:?}`: the shortest decimal that reads back to `x`, always with a point or an exponent
/// (a TOML float).
fn float(x: f64) -> String {
    format!("{x:?}")
}

/// The `[model]` table of the planar valley at `deg` degrees.
fn planar_toml(deg: f64) -> String {
    format!(
        "kind = \"valley\"\nprofile = \"quadratic\"\nc = 1.0\nangle = {}\n",
        float(deg)
    )
}

/// The `[model]` table of the `d`-dimensional valley (unit curvatures), rotated by `seed`.
fn nd_toml(d: usize, seed: Option<u64>) -> String {
    let lambdas = vec!["1.0"; d - 1].join(", ");
    let mut t = format!(
        "kind = \"valley_nd\"\nnormal_dim = {}\ntangent_dim = 1\nlambdas = [{lambdas}]\nprofile = \"quadratic\"\nc = 1.0\n",
        d - 1
    );
    if let Some(s) = seed {
        t += &format!("rotation_seed = {s}\n");
    }
    t
}

/// The configuration of one speed point (see [`SpeedPoint::config`]): label noise `sigma = 1`,
/// the optimizer, the start, the window recorded `records` times, the ensemble's size and
/// seed, the manifold coordinate `y0`.
fn point_config(
    model_toml: &str,
    optimizer: &AnyOptimizer,
    start: &[f64],
    window: u64,
    records: u64,
    setup: &Setup,
) -> String {
    let optimizer = match optimizer {
        AnyOptimizer::Adam(a) => format!(
            "kind = \"adam\"\nlr = {}\nbeta1 = {}\nbeta2 = {}\neps = {}\n",
            float(a.lr.base()),
            float(a.beta1),
            float(a.beta2),
            float(a.eps)
        ),
        other => format!("kind = \"sgd\"\nlr = {}\n", float(other.schedule().base())),
    };
    let theta: Vec<String> = start.iter().map(|&x| float(x)).collect();
    format!(
        "# Reruns one point of the adam_rotation study: quasistatic compare config.toml --out DIR\n\
         seed = {}\nsteps = {window}\ntrajectories = {}\nrecord_every = {}\nobservables = [\"y0\"]\n\
         save_trajectories = false\n\n[model]\n{model_toml}\n[noise]\nkind = \"label\"\nsigma = 1.0\n\n\
         [optimizer]\n{optimizer}\n[start]\ntheta = [{}]\n",
        setup.seed,
        setup.trajectories,
        window / records,
        theta.join(", ")
    )
}

/// What the study measured.
#[derive(Clone, Debug, Serialize)]
pub struct RotationData {
    /// Angles of the planar valley (degrees).
    pub angles: Vec<f64>,
    /// Dimensions of the N-dimensional valley.
    pub dims: Vec<usize>,
    /// Rotation seeds of the N-dimensional valley.
    pub seeds: Vec<u64>,
    /// True trajectories per point.
    pub trajectories: usize,
    /// Target displacement of the derived dynamics over a window.
    pub displacement: f64,
    /// Longest window (optimizer steps).
    pub max_window: u64,
    /// Start `y`.
    pub y0: f64,
    /// The planar valley: per angle, SGD then Adam.
    pub planar: Vec<SpeedPoint>,
    /// The N-dimensional valley: per dimension, axis-aligned then rotated (SGD under the
    /// first rotation only: it is equivariant).
    pub nd: Vec<SpeedPoint>,
    /// Adam's `eps` values of the sensitivity check on the axis-aligned planar valley.
    pub eps_values: Vec<f64>,
    /// The derived speed at the start for each of them.
    pub eps_speeds: Vec<f64>,
}

/// Learning rate of SGD.
pub const SGD_LR: f64 = 0.05;
/// Learning rate of Adam.
pub const ADAM_LR: f64 = 0.01;
/// Adam's `beta2` (`tau_v = 1000` steps).
pub const ADAM_BETA2: f64 = 0.999;
/// Adam's `eps`.
pub const ADAM_EPS: f64 = 1e-8;

fn sgd() -> AnyOptimizer {
    AnyOptimizer::Sgd(Sgd {
        lr: Schedule::Constant(SGD_LR),
    })
}

fn adam(eps: f64) -> AnyOptimizer {
    AnyOptimizer::Adam(Adam {
        lr: Schedule::Constant(ADAM_LR),
        beta1: 0.9,
        beta2: ADAM_BETA2,
        eps,
        weight_decay: 0.0,
    })
}

/// The seed of every ensemble of the study (true and derived).
pub const ENSEMBLE_SEED: u64 = 31;

/// Run the study at `scale` (see the module docs).
pub fn measure(scale: Scale) -> Result<RotationData> {
    let angles: Vec<f64> = scale.pick(
        vec![0.0, 45.0, 90.0],
        vec![0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0],
        vec![
            0.0, 7.5, 15.0, 22.5, 30.0, 37.5, 45.0, 52.5, 60.0, 67.5, 75.0, 82.5, 90.0,
        ],
    );
    let dims: Vec<usize> = scale.pick(vec![2, 4], vec![2, 4, 8, 16], vec![2, 4, 8, 16, 32]);
    let seeds: Vec<u64> = scale.pick(vec![1, 2], vec![1, 2, 3], vec![1, 2, 3, 4, 5, 6]);
    let setup = Setup {
        trajectories: scale.pick(32, 96, 512),
        displacement: scale.pick(0.3, 0.4, 0.5),
        max_window: scale.pick(20_000, 20_000, 80_000),
        seed: ENSEMBLE_SEED,
    };
    let y0 = 2.0;
    let noise = NoiseModel::Label {
        sigma: 1.0,
        batch: None,
    };
    let optimizers = [sgd(), adam(ADAM_EPS)];

    // Part 1: the planar valley against the angle.
    let mut planar: Vec<SpeedPoint> = Vec::new();
    for &deg in &angles {
        let model = Valley::planar(Profile::Quadratic, 1.0).with_angle(deg.to_radians());
        for opt in &optimizers {
            planar.push(speed(
                &model,
                &planar_toml(deg),
                &noise,
                opt,
                (&format!("{deg} deg"), deg, None),
                y0,
                &setup,
            )?);
        }
    }
    // eps sensitivity of the derived speed where the manifold is axis-aligned.
    let aligned = Valley::planar(Profile::Quadratic, 1.0).with_angle(0.0);
    let eps_speed = |eps: f64| -> Result<f64> {
        let dv = derive(
            &aligned,
            &noise,
            &adam(eps),
            &[0.0, y0],
            &DeriveOptions::default(),
        )?;
        Ok(-dv.drift_manifold_coordinates.map_or(f64::NAN, |v| v[0]))
    };
    let eps_values = vec![1e-8, 1e-4, 1e-2];
    let eps_speeds: Vec<f64> = eps_values
        .iter()
        .map(|&e| eps_speed(e))
        .collect::<Result<_>>()?;

    // Part 2: the N-dimensional valley against its dimension.
    let mut nd: Vec<SpeedPoint> = Vec::new();
    for &d in &dims {
        let base = Valley::new(vec![1.0; d - 1], 1, Profile::Quadratic, 1.0);
        let mut variants: Vec<(Valley, Option<u64>)> = vec![(base.clone(), None)];
        for &s in &seeds {
            variants.push((base.clone().with_random_rotation(s), Some(s)));
        }
        for (model, seed) in &variants {
            for opt in &optimizers {
                // SGD is equivariant: one rotation is enough beside the aligned valley.
                if opt.name() == "sgd" && seed.is_some_and(|s| s != seeds[0]) {
                    continue;
                }
                let label = match seed {
                    None => format!("d = {d}, aligned"),
                    Some(s) => format!("d = {d}, rotation seed {s}"),
                };
                nd.push(speed(
                    model,
                    &nd_toml(d, *seed),
                    &noise,
                    opt,
                    (&label, d as f64, *seed),
                    y0,
                    &setup,
                )?);
            }
        }
    }
    Ok(RotationData {
        angles,
        dims,
        seeds,
        trajectories: setup.trajectories,
        displacement: setup.displacement,
        max_window: setup.max_window,
        y0,
        planar,
        nd,
        eps_values,
        eps_speeds,
    })
}
