//! Errors of the toolkit.

use std::path::PathBuf;

/// Everything that can go wrong, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invalid configuration value: which field, which value, what is allowed.
    #[error("invalid value for `{field}`: {value} ({allowed})")]
    InvalidConfig {
        /// Dotted path of the field, e.g. `optimizer.lr`.
        field: String,
        /// The offending value as written.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A configuration file that does not parse (syntax, unknown field, wrong type).
    #[error("cannot parse config {path}: {message}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the field and line).
        message: String,
    },
    /// A data file that cannot be used.
    #[error("data file {path}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// File-system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A numerical procedure that did not succeed (e.g. no stable equilibrium).
    #[error("{0}")]
    Numerical(String),
    /// A run stopped on request (a stop flag set while it ran) before it finished; it
    /// produced no result.
    #[error("interrupted before the run finished")]
    Interrupted,
    /// A run that would need more memory or disk than the machine has: refused before it
    /// starts.
    #[error("{what} needs about {needed}, but {available}; {suggestion}")]
    Resources {
        /// What would run out (e.g. "memory of the run").
        what: String,
        /// The estimate, in words (e.g. "41.2 GiB").
        needed: String,
        /// What there is, in words.
        available: String,
        /// What to change (e.g. "raise record_every to 100").
        suggestion: String,
    },
    /// Every trajectory of an ensemble diverged: there is no result to report.
    #[error("all {trajectories} trajectories diverged (the first at step {first_step}: {reason})")]
    AllDiverged {
        /// Ensemble size.
        trajectories: usize,
        /// The earliest divergence step.
        first_step: u64,
        /// Its reason.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl ToString,
        allowed: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result with the toolkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
