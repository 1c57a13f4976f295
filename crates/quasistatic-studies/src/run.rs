//! Configuration-driven runs: build from a [`Config`], run, write the output folder.

use std::path::{Path, PathBuf};

use crate::output::{self, RunMeta};
use quasistatic::config::{Built, Config};
use quasistatic::error::Result;
use quasistatic::simulate::{run_ensemble, EnsembleResult};

/// What a finished simulation produced.
#[derive(Debug)]
pub struct SimulationOutcome {
    /// The recorded ensemble.
    pub result: EnsembleResult,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Key facts of a built configuration, for reports.
pub fn describe(config: &Config, built: &Built) -> Vec<(String, String)> {
    let noise = match &built.noise {
        quasistatic::noise::NoiseModel::Label { sigma, batch } => {
            format!(
                "{} (sigma {sigma}, batch {})",
                built.noise.name(),
                batch.map_or("full".into(), |b| b.to_string())
            )
        }
        quasistatic::noise::NoiseModel::Isotropic { sigma, batch }
        | quasistatic::noise::NoiseModel::Hessian { sigma, batch } => {
            format!("{} (sigma {sigma}, divisor {batch})", built.noise.name())
        }
        other => other.name().to_string(),
    };
    vec![
        (
            "model".into(),
            format!(
                "{} (d = {}, n = {})",
                built.model.name(),
                built.model.dim(),
                built.model.n_samples()
            ),
        ),
        ("noise".into(), noise),
        ("optimizer".into(), built.optimizer.to_string()),
        ("steps".into(), config.steps.to_string()),
        ("trajectories".into(), config.trajectories.to_string()),
        ("record_every".into(), config.record_every.to_string()),
        ("seed".into(), config.seed.to_string()),
    ]
}

/// Validate `config`, run its ensemble and write the output folder `out` (resolved config,
/// CSVs, JSON summary, plots, report). `progress` enables the progress bar (drawn only on a
/// terminal).
pub fn simulate(config: &Config, out: &Path, progress: bool) -> Result<SimulationOutcome> {
    let mut built = config.build()?;
    let total = built.spec.trajectories as u64 * built.spec.steps;
    let result = crate::progress::with_bar(progress, total, |bar| {
        built.spec.progress = bar;
        quasistatic::with_model!(&built.model, m => run_ensemble(m, &built.noise, &built.optimizer, &built.spec))
    });
    let files = output::write_ensemble(out, &result, &run_meta(config, &built))?;
    Ok(SimulationOutcome { result, files })
}

/// What the files of a configuration's run say about it (title, resolved config,
/// description): with [`output::write_ensemble`], the output folder of an ensemble of
/// `config` run elsewhere (e.g. from the Python package), the same files as [`simulate`].
pub fn run_meta(config: &Config, built: &Built) -> RunMeta {
    RunMeta {
        title: config.title.clone().unwrap_or_else(|| {
            format!(
                "{} / {} / {}",
                built.model.name(),
                built.optimizer.name(),
                built.noise.name()
            )
        }),
        config_toml: config.to_toml(),
        description: describe(config, built),
        save_trajectories: config.save_trajectories,
    }
}
