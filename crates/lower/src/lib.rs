//! Lowering of an SBML [`Document`](vht_sbml::Document) to the model IR.
//!
//! This is where SBML's meaning is made explicit, so that nothing after it
//! needs to know SBML: species become amounts integrated from reaction fluxes
//! (with a concentration symbol computed from the amount where the model
//! reads concentrations), function definitions are inlined, kinetic-law local
//! parameters become `reaction.local` parameters, level defaults and
//! `initialAssignment`s become initial-value expressions, algebraic rules get
//! their unknowns by matching, fast reactions become equilibrium constraints,
//! and `rateOf` becomes the rate expression it denotes.
//!
//! Decisions where SBML leaves room, each pinned by SBML Test Suite cases:
//! - a species whose id means a concentration is integrated as its amount
//!   (`S.amount`, role `Internal`; `S = S.amount / size`), so reactions and
//!   resizing events are exact; a concentration set by a rate rule is itself
//!   the state, and an event resizing its compartment rescales it by old/new;
//! - an event assigning a concentration sets the amount to value × the size
//!   before the event, even when the same event resizes (01779, 01506);
//! - a 0-D compartment without a size has size 1 (its species' amounts and
//!   concentrations coincide);
//! - `rateOf(x)` is x's rate: its rate expression, 0 for a constant, the
//!   chain rule through an assigned quantity; inside `delay` it is 0 before
//!   t = 0, where the model is at rest (01400);
//! - an algebraic rule's unknown is preferred among candidates no event
//!   sets, then without a value, then in model order (01589, 01787);
//! - fast reactions: see the `fast` module; the fast species' first guesses
//!   are the equilibrium reached by relaxing the fast reactions from the
//!   given amounts (pseudo-transient continuation at lowering time), which
//!   picks the root the reactions run to when there are several.
//!
//! Architecture invariant: the IR knows nothing about SBML, and this crate
//! knows nothing about how the IR is executed (it evaluates initial values
//! only to give algebraic unknowns good first guesses).
//!
//! ```
//! let xml = r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
//!   <model id="m">
//!     <listOfCompartments><compartment id="c" size="2" constant="true"/></listOfCompartments>
//!     <listOfSpecies><species id="S" compartment="c" initialConcentration="3"
//!       hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/></listOfSpecies>
//!   </model></sbml>"#;
//! let (doc, _) = vht_sbml::read_str(xml, None).unwrap();
//! let (model, _) = vht_lower::lower_with_diagnostics(&doc).unwrap();
//! // `S` means a concentration; the amount behind it starts at 3 * c.
//! let view = model.species_view(model.lookup("S").unwrap()).unwrap();
//! assert!(matches!(view.amount, vht_ir::Expr::Sym(_)));
//! ```

mod convert;
mod fast;
mod lower;
mod matching;

use std::path::Path;

pub use vht_sbml::Diagnostic;

/// Why a document could not be lowered. Every variant names the SBML element.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LowerError {
    #[error("{file}: the id '{id}' is defined twice")]
    DuplicateId { file: String, id: String },
    #[error("{file}: {context} refers to undefined {what} '{id}'")]
    Undefined { file: String, context: String, what: &'static str, id: String },
    #[error("{file}: {context} calls undefined function '{name}'")]
    UnknownFunction { file: String, context: String, name: String },
    #[error("{file}: {context} calls '{name}' with {found} arguments, expected {expected}")]
    Arity { file: String, context: String, name: String, expected: usize, found: usize },
    #[error("{file}: function '{name}' calls itself (directly or through others)")]
    RecursiveFunction { file: String, name: String },
    #[error("{file}: {context}: {problem}")]
    BadMath { file: String, context: String, problem: String },
    #[error("{file}: '{id}' is determined twice: by {first} and by {second}")]
    Overdetermined { file: String, id: String, first: String, second: String },
    #[error("{file}: {context} cannot set '{id}', which is a {what}")]
    BadTarget { file: String, context: String, id: String, what: &'static str },
    #[error(
        "{file}: algebraic rule {index} (line {line}) has no unknown left to determine (the model is overdetermined)"
    )]
    UnmatchedAlgebraicRule { file: String, index: usize, line: u32 },
    #[error("{file}: {source}")]
    Check {
        file: String,
        #[source]
        source: vht_ir::OrderError,
    },
}

/// Reading or lowering failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Read(#[from] vht_sbml::Error),
    #[error(transparent)]
    Lower(#[from] LowerError),
}

/// Lowers a document; warnings are dropped (see [`lower_with_diagnostics`]).
pub fn lower(doc: &vht_sbml::Document) -> Result<vht_ir::Model, LowerError> {
    lower_with_diagnostics(doc).map(|(m, _)| m)
}

/// Lowers a document, returning the warnings (a reaction without a kinetic
/// law, an unset value) with the model.
pub fn lower_with_diagnostics(doc: &vht_sbml::Document) -> Result<(vht_ir::Model, Vec<Diagnostic>), LowerError> {
    lower::lower(doc, "<input>")
}

/// Reads and lowers an SBML file; messages name the file.
pub fn load(path: &Path) -> Result<(vht_ir::Model, Vec<Diagnostic>), Error> {
    let (doc, mut diags) = vht_sbml::read_file(path)?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (model, more) = lower::lower(&doc, &file)?;
    diags.extend(more);
    Ok((model, diags))
}

/// Reads and lowers SBML text (`origin` names it in messages).
pub fn load_str(xml: &str, origin: Option<&Path>) -> Result<(vht_ir::Model, Vec<Diagnostic>), Error> {
    let (doc, mut diags) = vht_sbml::read_str(xml, origin)?;
    let file = origin
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "<input>".to_string());
    let (model, more) = lower::lower(&doc, &file)?;
    diags.extend(more);
    Ok((model, diags))
}
