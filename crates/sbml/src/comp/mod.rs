//! Flattening of SBML Level 3 hierarchical models (the `comp` package).
//!
//! A comp document builds its main model out of *submodels*, each an instance
//! of a model definition from the same file or from another file. Flattening
//! turns it into one plain core SBML model, the way libSBML's
//! `CompFlatteningConverter` does, so the core reader never needs to know
//! about comp:
//!
//! 1. every submodel is instantiated (recursively) as a copy of its model;
//! 2. every port, deletion, replacement and `replacedBy` is resolved to the
//!    element it points at, *before* anything is renamed;
//! 3. every id of an instance `A` is prefixed `A__` (nested: `A__B__x`) along
//!    with every reference to it;
//! 4. top-down, replaced elements are removed and references to them
//!    redirected to their replacement (dividing by `conversionFactor` where
//!    given), submodels' `timeConversionFactor` and `extentConversionFactor`
//!    are applied to their math, and finally `replacedBy` hands a parent
//!    element's id over to the submodel element that replaces it;
//! 5. what is left of all instances is appended to the main model.
//!
//! Architecture invariant: this module works on XML text in, XML text out.
//! It knows nothing of the core reader's data structures, nor of simulation.
//!
//! ```
//! let xml = r#"<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core"
//!   xmlns:comp="http://www.sbml.org/sbml/level3/version1/comp/version1"
//!   level="3" version="1" comp:required="true">
//!   <model id="m">
//!     <comp:listOfSubmodels><comp:submodel comp:id="A" comp:modelRef="inner"/></comp:listOfSubmodels>
//!   </model>
//!   <comp:listOfModelDefinitions>
//!     <comp:modelDefinition id="inner">
//!       <listOfParameters><parameter id="k" value="2" constant="true"/></listOfParameters>
//!     </comp:modelDefinition>
//!   </comp:listOfModelDefinitions>
//! </sbml>"#;
//! let flat = vht_sbml::comp::flatten(xml, None).unwrap();
//! assert!(flat.contains(r#"id="A__k""#));
//! assert!(!flat.contains("comp"));
//! ```

mod flatten;
mod tree;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use flatten::flatten;

/// Why a comp document could not be flattened. `file` is the file the
/// offending element came from (`<input>` for the text given to [`flatten`]),
/// `line` its 1-based line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompError {
    #[error("{file}: not well-formed XML: {source}")]
    Xml {
        file: String,
        #[source]
        source: roxmltree::Error,
    },
    #[error("{file}: the document has no <model>")]
    NoModel { file: String },
    #[error("{file}:{line}: comp element <{element}> is not understood")]
    UnknownElement { file: String, line: u32, element: String },
    #[error("{file}:{line}: <{element}> inside a submodel instance cannot be flattened: package elements other than comp are not understood")]
    UnsupportedPackage { file: String, line: u32, element: String },
    #[error("{file}:{line}: <{element}> lacks the required attribute '{attribute}'")]
    MissingAttribute { file: String, line: u32, element: String, attribute: String },
    #[error("{file}:{line}: submodel '{submodel}' refers to model '{model_ref}', which does not exist")]
    UnknownModel { file: String, line: u32, submodel: String, model_ref: String },
    #[error("{file}:{line}: submodel '{submodel}' instantiates '{model_ref}', which is one of its own ancestors")]
    Cycle { file: String, line: u32, submodel: String, model_ref: String },
    #[error("{file}:{line}: <{element}> refers to submodel '{submodel}', which does not exist")]
    UnknownSubmodel { file: String, line: u32, element: String, submodel: String },
    #[error("{file}:{line}: <{element}> refers to {kind} '{target}', which does not exist in the referenced model")]
    Unresolved { file: String, line: u32, element: String, kind: &'static str, target: String },
    #[error("{file}:{line}: <{element}> has a nested <sBaseRef>, but '{target}' is not a submodel")]
    NotASubmodel { file: String, line: u32, element: String, target: String },
    #[error("{file}:{line}: external model source '{source_uri}' needs a base directory to be resolved")]
    NoBaseDir { file: String, line: u32, source_uri: String },
    #[error("{file}:{line}: cannot read external model '{}': {source}", path.display())]
    ExternalIo {
        file: String,
        line: u32,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
