//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// Where in the clinical input something was found: the file, the line (for
/// NDJSON; 0 for a bundle, which is one JSON document), the JSON path inside
/// that line's document, and the id of the resource it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: PathBuf,
    pub line: usize,
    pub path: String,
    pub resource: String,
}

impl Loc {
    /// The location without the file: for text that reaches output files,
    /// where a file name (which may name the patient) must not.
    pub fn without_file(&self) -> String {
        let mut s = String::new();
        if self.line > 0 {
            s += &format!("line {}: ", self.line);
        }
        s += &self.path;
        if !self.resource.is_empty() {
            s += &format!(" (resource {})", self.resource);
        }
        s
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": {}", self.path)?;
        if !self.resource.is_empty() {
            write!(f, " (resource {})", self.resource)?;
        }
        Ok(())
    }
}

/// Locations are boxed: they are large, and every `Result` here carries the error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FhirError {
    #[error("cannot read {}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{}:{line}: not JSON: {error}", file.display())]
    Json { file: PathBuf, line: usize, error: String },
    /// A field is missing or has the wrong shape.
    #[error("{at}: field '{field}': expected {expected}")]
    Field { at: Box<Loc>, field: String, expected: String },
    #[error("{at}: {problem}")]
    Resource { at: Box<Loc>, problem: String },
    #[error("{at}: LOINC code {code} is not in the mapping file (strict = true)")]
    UnknownCode { at: Box<Loc>, code: String },
    #[error("{at}: cannot convert '{from}' to '{to}': {problem}")]
    Unit { at: Box<Loc>, from: String, to: String, problem: String },
    #[error("{}:{line}: {problem}", file.display())]
    Map { file: PathBuf, line: usize, problem: String },
    #[error("UCUM unit '{unit}' at character {offset}: {problem}")]
    Ucum { unit: String, offset: usize, problem: String },
    #[error("{}: {problem}", file.display())]
    Model { file: PathBuf, problem: String },
    #[error(
        "no pseudonymisation key: pass --key-file FILE or set VHT_PSEUDONYM_KEY (there is deliberately no default key)"
    )]
    NoKey,
    #[error("{}: the pseudonymisation key is empty", file.display())]
    EmptyKey { file: PathBuf },
    #[error("{what}: {problem}")]
    Simulation { what: String, problem: String },
}

impl FhirError {
    pub(crate) fn field(at: &Loc, field: &str, expected: impl Into<String>) -> FhirError {
        FhirError::Field { at: Box::new(at.clone()), field: field.to_string(), expected: expected.into() }
    }
}
