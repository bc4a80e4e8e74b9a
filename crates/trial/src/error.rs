//! The one error type of the crate.

use std::path::PathBuf;

/// Where in a spec file something is: the file, the 1-based line, and the
/// field as a path (`arms[1].interventions[0].target`).
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub field: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.field)
    }
}

/// Statistics of a population screening that found too few plausible candidates.
#[derive(Clone, Debug, PartialEq)]
pub struct ScreeningStats {
    pub tried: u64,
    pub accepted: u64,
    /// Per plausibility constraint (in spec order): candidates it rejected.
    /// A candidate that fails several constraints counts for each.
    pub rejected_by: Vec<(String, u64)>,
    /// Candidates whose screening simulation failed.
    pub failed: u64,
}

impl std::fmt::Display for ScreeningStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed to simulate", self.failed)?;
        for (c, n) in &self.rejected_by {
            write!(f, "; '{c}' rejected {n}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrialError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The spec is not valid TOML, or a field is missing, unknown or of the wrong type.
    #[error("{at}: {message}")]
    Spec { at: Location, message: String },
    /// A field names a model id that does not exist (or cannot be used there).
    #[error("{at}: '{id}' {problem}{}", suggestions(.nearest))]
    UnknownId { at: Location, id: String, problem: String, nearest: Vec<String> },
    #[error("{model}: {message}")]
    Model { model: PathBuf, message: String },
    #[error("{model}: could not compile the model for arm '{arm}': {message}")]
    Build { model: PathBuf, arm: String, message: String },
    #[error("only {} plausible candidates of the {wanted} wanted after {} tried ({stats}); widen the constraints, change the distributions or raise population.max_candidates", .stats.accepted, .stats.tried)]
    Implausible { wanted: u64, stats: ScreeningStats },
    #[error("{dir} holds the results of another trial (spec, model or size differ): use another --out or remove it")]
    OtherTrial { dir: PathBuf },
    #[error("{path}: {message}")]
    Store { path: PathBuf, message: String },
    /// A split trial's folder lacks some tasks' result files.
    #[error("{dir}: {} of the {tasks} task files are missing (tasks {}); run them (vht trial shard --index I --of {tasks}) before collecting", .missing.len(), list(.missing))]
    MissingShards { dir: PathBuf, tasks: u64, missing: Vec<u64> },
    /// A task's result file does not belong where it is.
    #[error("{path}: {problem}")]
    Shard { path: PathBuf, problem: String },
}

fn list(v: &[u64]) -> String {
    let shown: Vec<String> = v.iter().take(10).map(|i| i.to_string()).collect();
    if v.len() > 10 {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn suggestions(nearest: &[String]) -> String {
    match nearest {
        [] => String::new(),
        _ => format!(" (nearest: {})", nearest.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")),
    }
}

/// The ids of `candidates` closest to `id` by edit distance (at most three,
/// and only those close enough to be a plausible typo).
pub fn nearest<'a>(id: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = 2.max(id.chars().count() / 2);
    let mut scored: Vec<(usize, &str)> = candidates
        .map(|c| (edit_distance(&c.to_lowercase(), &id.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c.to_string()).collect()
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
