//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// Where in a PEtab file something was found: file, 1-based line, and the
/// column (table header) or yaml key it was in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    pub file: PathBuf,
    pub line: usize,
    pub column: String,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if !self.column.is_empty() {
            write!(f, ", column '{}'", self.column)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FitError {
    // The underlying errors are part of the message and not `#[source]`s,
    // so that printing the chain (anyhow's `{:#}`) does not say them twice.
    #[error("cannot read {}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    /// The problem yaml is malformed or uses YAML this reader does not take.
    #[error("{}:{line}: {problem}", file.display())]
    Yaml { file: PathBuf, line: usize, problem: String },
    #[error("{at}: expected {expected}, found '{found}'")]
    Value { at: At, expected: &'static str, found: String },
    #[error("{at}: missing required column")]
    MissingColumn { at: At },
    #[error("{at}: unknown {what} '{id}'")]
    UnknownId { at: At, what: &'static str, id: String },
    #[error("{at}: '{id}' is defined twice (first at line {first_line})")]
    Duplicate { at: At, id: String, first_line: usize },
    #[error("{at}: in '{formula}' at character {offset}: {problem}")]
    Formula { at: At, formula: String, offset: usize, problem: String },
    /// Valid PEtab that this importer does not handle (yet).
    #[error("{at}: not supported: {what}")]
    Unsupported { at: At, what: String },
    #[error("{at}: expected {expected} override values, found {found}")]
    OverrideCount { at: At, expected: usize, found: usize },
    #[error("{}: {error}", file.display())]
    Model {
        file: PathBuf,
        /// Boxed: the SBML reader's error is large, and every `Result` here carries it.
        error: Box<vht_lower::Error>,
    },
    #[error("{}: {error}", file.display())]
    Build { file: PathBuf, error: vht_sim::BuildError },
    #[error("{}: the model quantities the observables read: {error}", file.display())]
    Outputs { file: PathBuf, error: vht_sim::SimError },
    #[error("simulating condition {condition}: {error}")]
    Simulation { condition: String, error: vht_sim::SimError },
    #[error(
        "condition {condition}: no steady state by t = {t} (weighted norm of the state derivative {norm:.3e}, needs < 1)"
    )]
    SteadyState { condition: String, t: f64, norm: f64 },
    #[error("{expected} parameter values expected (one per row of the parameter table), found {found}")]
    ParameterCount { expected: usize, found: usize },
    /// The model uses something forward sensitivities do not handle yet
    /// (the objective itself can still be evaluated).
    #[error("{}: no gradient: {what}", file.display())]
    Sensitivities { file: PathBuf, what: String },
    /// The model has no adjoint system (forward sensitivities may still work).
    #[error("{}: no adjoint gradient: {what}", file.display())]
    Adjoint { file: PathBuf, what: String },
    #[error("{expected} scaled values expected (one per estimated parameter), found {found}")]
    ScaledCount { expected: usize, found: usize },
    #[error("parameter '{id}' is estimated but its bounds [{lower}, {upper}] are not a finite interval on its scale")]
    Bounds { id: String, lower: f64, upper: f64 },
    #[error("cannot start the worker threads: {reason}")]
    Threads { reason: String },
    #[error("no parameter '{id}' in the parameter table")]
    NoSuchParameter { id: String },
}
