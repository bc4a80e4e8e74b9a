//! The SBML document as read: plain data, close to the XML, with level
//! dependent defaults already applied (so a consumer need not know which
//! level a default came from), and `None` where SBML leaves a value unset.

use crate::math::Math;

/// A parsed SBML document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    pub level: u32,
    pub version: u32,
    pub model: Model,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub id: Option<String>,
    pub name: Option<String>,
    /// L3 model-wide conversion factor (a parameter id).
    pub conversion_factor: Option<String>,
    pub function_definitions: Vec<FunctionDefinition>,
    pub compartments: Vec<Compartment>,
    pub species: Vec<Species>,
    pub parameters: Vec<Parameter>,
    pub initial_assignments: Vec<InitialAssignment>,
    pub rules: Vec<Rule>,
    pub reactions: Vec<Reaction>,
    pub events: Vec<Event>,
}

/// Where an element sits in its file (1-based line), for messages.
pub type Line = u32;

#[derive(Clone, Debug, PartialEq)]
pub struct FunctionDefinition {
    pub id: String,
    pub args: Vec<String>,
    /// `None` when the lambda has no body (L3V2 allows a missing math).
    pub body: Option<Math>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Compartment {
    pub id: String,
    /// SBML allows non-integer dimensions in L3; 3 when unset in L1/L2.
    pub spatial_dimensions: Option<f64>,
    /// `size` (L2/L3) or `volume` (L1). L1/L2 default 1 is applied.
    pub size: Option<f64>,
    pub constant: bool,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Species {
    pub id: String,
    pub compartment: String,
    pub initial_amount: Option<f64>,
    pub initial_concentration: Option<f64>,
    pub has_only_substance_units: bool,
    pub boundary_condition: bool,
    pub constant: bool,
    pub conversion_factor: Option<String>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub id: String,
    pub value: Option<f64>,
    pub constant: bool,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InitialAssignment {
    pub symbol: String,
    pub math: Option<Math>,
    pub line: Line,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Assignment,
    Rate,
    Algebraic,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub kind: RuleKind,
    /// The variable set by an assignment or rate rule; `None` for algebraic rules.
    pub variable: Option<String>,
    pub math: Option<Math>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpeciesReference {
    /// L3 (and L2V2+) id; in L3 math it reads the stoichiometry.
    pub id: Option<String>,
    pub species: String,
    /// L1/L2 default 1 is applied; `None` in L3 when unset.
    pub stoichiometry: Option<f64>,
    /// L2 `stoichiometryMath`: the stoichiometry at every instant.
    pub stoichiometry_math: Option<Math>,
    pub constant: Option<bool>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KineticLaw {
    pub math: Option<Math>,
    /// L2 `listOfParameters` or L3 `listOfLocalParameters`.
    pub local_parameters: Vec<Parameter>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reaction {
    pub id: String,
    pub reversible: bool,
    pub fast: bool,
    pub reactants: Vec<SpeciesReference>,
    pub products: Vec<SpeciesReference>,
    pub modifiers: Vec<String>,
    pub kinetic_law: Option<KineticLaw>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventAssignment {
    pub variable: String,
    pub math: Option<Math>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The id, or a generated `event<N>` name when it has none (L2 ids are optional).
    pub id: String,
    /// `None` when the trigger or its math is missing (L3V2): never fires.
    pub trigger: Option<Math>,
    /// L3 trigger `initialValue`; `true` in L2 (an L2 event cannot fire at t0).
    pub initial_value: bool,
    /// L3 trigger `persistent`; `true` in L2.
    pub persistent: bool,
    pub delay: Option<Math>,
    pub priority: Option<Math>,
    pub use_values_from_trigger_time: bool,
    pub assignments: Vec<EventAssignment>,
    pub line: Line,
}
