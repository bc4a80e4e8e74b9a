//! SBML reader: Levels 1-3 core and MathML to a plain [`Document`].
//!
//! The reader applies each level's default values and turns MathML (and L1
//! infix formulas) into one [`Math`] tree, so consumers see one SBML whatever
//! the level. It checks the structure it needs to read (required attributes,
//! well-formed math) and leaves model semantics (undefined ids, cycles,
//! which quantity a rule sets) to the lowering in `vht-lower`.
//!
//! Architecture invariant: this crate knows nothing about simulation or the
//! model IR. Reading never panics on any input: it returns the document with
//! warnings, or a typed [`Error`] naming the file, the line and the element.
//!
//! ```
//! let xml = r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
//!   <model id="m"><listOfParameters>
//!     <parameter id="k" value="2" constant="true"/>
//!   </listOfParameters></model></sbml>"#;
//! let (doc, warnings) = vht_sbml::read_str(xml, None).unwrap();
//! assert_eq!(doc.model.parameters[0].value, Some(2.0));
//! assert!(warnings.is_empty());
//! ```

pub mod comp;
mod infix;
mod lines;
mod math;
mod model;
mod read;

use std::fmt;
use std::path::{Path, PathBuf};

pub use infix::{parse_formula, FormulaError};
pub use math::{Math, Op};
pub use model::*;
pub use read::MAX_MATH_DEPTH;

/// A problem that does not stop reading (an ignored package, a missing
/// attribute that has a sensible default).
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file (or `<input>`), and the 1-based line when known.
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Info,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, sev, self.message),
            None => write!(f, "{}: {}: {}", self.file, sev, self.message),
        }
    }
}

/// Why a document could not be read. The details are boxed so that every
/// `Result` of the reader stays small (it recurses through MathML).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error {
    pub kind: Box<ErrorKind>,
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error { kind: Box::new(kind) }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: not well-formed XML: {message}")]
    Xml { file: String, line: u32, message: String },
    #[error("{file}: not an SBML document (the root element is <{found}>, expected <sbml>)")]
    NotSbml { file: String, found: String },
    #[error("{file}:{line}: SBML level {level} version {version} is not supported")]
    UnsupportedLevel { file: String, line: u32, level: String, version: String },
    #[error("{file}: <sbml> has no <model>")]
    NoModel { file: String },
    #[error("package '{package}' is not supported ({file} line {line})")]
    UnsupportedPackage { package: String, file: String, line: u32 },
    #[error("{file}:{line}: <{element}>{} is missing required attribute '{attribute}'", id_suffix(id))]
    MissingAttribute { file: String, line: u32, element: String, id: Option<String>, attribute: String },
    #[error("{file}:{line}: <{element}>{} attribute '{attribute}': '{value}' is not {expected}", id_suffix(id))]
    BadAttribute {
        file: String,
        line: u32,
        element: String,
        id: Option<String>,
        attribute: String,
        value: String,
        expected: &'static str,
    },
    #[error("{file}:{line}: <{element}> {problem}")]
    BadMath { file: String, line: u32, element: String, problem: String },
    #[error("{file}:{line}: formula '{formula}' at offset {at}: {problem}")]
    BadFormula { file: String, line: u32, formula: String, at: usize, problem: String },
    #[error("{file}: comp flattening failed: {source}")]
    Comp {
        file: String,
        #[source]
        source: comp::CompError,
    },
}

fn id_suffix(id: &Option<String>) -> String {
    id.as_ref().map(|i| format!(" '{i}'")).unwrap_or_default()
}

/// Reads an SBML file. `comp` submodels are resolved relative to its folder.
pub fn read_file(path: &Path) -> Result<(Document, Vec<Diagnostic>), Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::from(ErrorKind::Io { path: path.to_path_buf(), source }))?;
    read_str(&text, Some(path))
}

/// Reads SBML text; `origin` names the file in messages and locates
/// external comp model files.
pub fn read_str(xml: &str, origin: Option<&Path>) -> Result<(Document, Vec<Diagnostic>), Error> {
    let file = match origin {
        Some(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string()),
        None => "<input>".to_string(),
    };
    read::read(xml, &file, origin)
}
