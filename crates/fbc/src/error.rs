//! The one error type of this crate.

use std::path::PathBuf;

/// Why a model could not be read into a flux balance problem, or solved.
///
/// Every variant about the document names the element and the 1-based line it
/// starts on, so a message points at the offending XML. An infeasible or
/// unbounded linear program is *not* an error: it is a
/// [`Status`](crate::Status) of the [`FluxSolution`](crate::FluxSolution).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FbcError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error found in a file, with the file's path (see [`crate::solve_file`]).
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<FbcError>,
    },
    /// The text is not well-formed XML (roxmltree's message carries the position).
    #[error("not well-formed XML: {0}")]
    Xml(#[from] roxmltree::Error),
    /// An element was not the one the SBML structure requires here.
    #[error("line {line}: expected <{expected}>, found <{found}>")]
    UnexpectedElement { expected: &'static str, found: String, line: u32 },
    /// A required child element is absent.
    #[error("line {line}: <{parent}> has no <{expected}> child")]
    MissingElement { parent: String, expected: &'static str, line: u32 },
    /// A required attribute is absent.
    #[error("line {line}: <{element}> has no `{attribute}` attribute")]
    MissingAttribute { element: String, attribute: &'static str, line: u32 },
    /// An attribute (or MathML text) does not hold what it must.
    #[error("line {line}: <{element}> `{attribute}`: expected {expected}, found {found:?}")]
    InvalidValue { element: String, attribute: &'static str, expected: &'static str, found: String, line: u32 },
    /// An identifier refers to something the model does not define.
    #[error("line {line}: <{element}> refers to {kind} `{id}`, which the model does not define")]
    UnknownReference { element: String, kind: &'static str, id: String, line: u32 },
    /// Two elements of the same kind share an identifier.
    #[error("line {line}: <{element}> id `{id}` is already used")]
    DuplicateId { element: String, id: String, line: u32 },
    /// The model carries no `fbc:listOfObjectives`, or an empty one.
    #[error("line {line}: <model> has no fbc objective (fbc:listOfObjectives with an fbc:objective)")]
    NoObjective { line: u32 },
    /// A symbol used for a bound or a stoichiometry has no value.
    #[error("line {line}: `{id}` has no value (no value attribute, initial assignment or assignment rule)")]
    NoValue { id: String, line: u32 },
    /// Initial assignments or assignment rules depend on each other in a cycle.
    #[error("line {line}: the value of `{id}` depends on itself")]
    CircularAssignment { id: String, line: u32 },
    /// A construct this crate deliberately does not handle.
    #[error("line {line}: <{element}> is not supported: {why}")]
    Unsupported { element: String, why: &'static str, line: u32 },
    /// A hand-built [`FbaProblem`](crate::FbaProblem) refers past the end of a list.
    #[error("{what} index {index} is out of range (the list has {len})")]
    IndexOutOfRange { what: &'static str, index: usize, len: usize },
    /// A hand-built [`FbaProblem`](crate::FbaProblem) has a NaN bound.
    #[error("reaction `{reaction}` has bounds [{lower}, {upper}]: a bound is NaN")]
    InvalidBound { reaction: String, lower: f64, upper: f64 },
    /// The LP solver failed numerically (not infeasible, not unbounded: those are statuses).
    /// The reason is the solver's own message; its error type is kept private so that
    /// the solver can be swapped without changing this crate's API.
    #[error("the LP solver failed: {reason}")]
    Solver { reason: String },
}
