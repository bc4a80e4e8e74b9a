//! From SBML text to an [`FbaProblem`]: species balances, flux bounds, objective.

use std::collections::{HashMap, HashSet};

use roxmltree::{Document, Node};

use crate::error::FbcError;
use crate::math::eval_math;
use crate::xml::{boolean, children_named, fbc_attr, fbc_children, line, name, number, require};
use crate::{Direction, FbaProblem, Objective, Reaction};

/// Reads the active objective, flux bounds and stoichiometry of an SBML model
/// with the fbc package (v1 `fbc:listOfFluxBounds` or v2 `fbc:lowerFluxBound` /
/// `fbc:upperFluxBound` attributes naming parameters).
///
/// Bounds default to -inf/+inf; several v1 bounds on one reaction intersect.
/// Parameters and stoichiometries take the values of their initial
/// assignments or assignment rules when those have math (an empty one keeps
/// the attribute value, as the SBML test suite expects).
pub fn read_str(xml: &str) -> Result<FbaProblem, FbcError> {
    let doc = Document::parse(xml)?;
    let sbml = doc.root_element();
    if name(sbml) != "sbml" {
        return Err(FbcError::UnexpectedElement { expected: "sbml", found: name(sbml).into(), line: line(sbml) });
    }
    let model = children_named(sbml, "model").next().ok_or(FbcError::MissingElement {
        parent: "sbml".into(),
        expected: "model",
        line: line(sbml),
    })?;
    reject_unsupported(model)?;
    let mut env = Env::new(model)?;

    // Species: only non-boundary, non-constant species are balanced (N v = 0).
    // A boundary species is the outside world; a constant one cannot change.
    let mut species = Vec::new();
    let mut species_row: HashMap<&str, Option<usize>> = HashMap::new();
    for sp in list_items(model, "listOfSpecies", "species") {
        let id = require(sp, "id", sp.attribute("id"))?;
        let unconstrained =
            boolean(sp, "boundaryCondition")?.unwrap_or(false) || boolean(sp, "constant")?.unwrap_or(false);
        let row = (!unconstrained).then_some(species.len());
        if species_row.insert(id, row).is_some() {
            return Err(duplicate(sp, id));
        }
        if !unconstrained {
            species.push(id.to_string());
        }
    }

    let mut reactions: Vec<Reaction> = Vec::new();
    let mut reaction_index: HashMap<&str, usize> = HashMap::new();
    for r in list_items(model, "listOfReactions", "reaction") {
        let id = require(r, "id", r.attribute("id"))?;
        if reaction_index.insert(id, reactions.len()).is_some() {
            return Err(duplicate(r, id));
        }
        let lower_bound = match fbc_attr(r, "lowerFluxBound") {
            Some(p) => env.parameter(p, r)?,
            None => f64::NEG_INFINITY,
        };
        let upper_bound = match fbc_attr(r, "upperFluxBound") {
            Some(p) => env.parameter(p, r)?,
            None => f64::INFINITY,
        };
        let mut stoichiometry: Vec<(usize, f64)> = Vec::new();
        for (list, sign) in [("listOfReactants", -1.0), ("listOfProducts", 1.0)] {
            for sr in list_items(r, list, "speciesReference") {
                let sp = require(sr, "species", sr.attribute("species"))?;
                let row = *species_row.get(sp).ok_or_else(|| FbcError::UnknownReference {
                    element: "speciesReference".into(),
                    kind: "species",
                    id: sp.into(),
                    line: line(sr),
                })?;
                let value = env.stoichiometry(sr)?;
                if !value.is_finite() {
                    return Err(FbcError::InvalidValue {
                        element: "speciesReference".into(),
                        attribute: "stoichiometry",
                        expected: "a finite number",
                        found: value.to_string(),
                        line: line(sr),
                    });
                }
                let Some(row) = row else { continue };
                // A species listed twice (A + A -> B) contributes once with the sum.
                match stoichiometry.iter_mut().find(|(s, _)| *s == row) {
                    Some((_, v)) => *v += sign * value,
                    None => stoichiometry.push((row, sign * value)),
                }
            }
        }
        stoichiometry.retain(|(_, v)| *v != 0.0);
        reactions.push(Reaction { id: id.to_string(), lower_bound, upper_bound, stoichiometry });
    }

    let reaction_of = |node: Node, id: &str| {
        reaction_index.get(id).copied().ok_or_else(|| FbcError::UnknownReference {
            element: name(node).into(),
            kind: "reaction",
            id: id.into(),
            line: line(node),
        })
    };

    // fbc v1 bounds: a list of (reaction, operation, value) constraints.
    for list in fbc_children(model, "listOfFluxBounds") {
        for fb in fbc_children(list, "fluxBound") {
            let reaction = reaction_of(fb, require(fb, "reaction", fbc_attr(fb, "reaction"))?)?;
            let operation = require(fb, "operation", fbc_attr(fb, "operation"))?;
            let value = number(fb, "value", require(fb, "value", fbc_attr(fb, "value"))?)?;
            let r = &mut reactions[reaction];
            // "less"/"greater" are the strict spellings of early fbc v1 drafts; an LP
            // cannot express strictness, so they act as their non-strict forms.
            match operation {
                "lessEqual" | "less" => r.upper_bound = r.upper_bound.min(value),
                "greaterEqual" | "greater" => r.lower_bound = r.lower_bound.max(value),
                "equal" => {
                    r.lower_bound = r.lower_bound.max(value);
                    r.upper_bound = r.upper_bound.min(value);
                }
                other => {
                    return Err(FbcError::InvalidValue {
                        element: "fluxBound".into(),
                        attribute: "operation",
                        expected: "lessEqual, greaterEqual or equal",
                        found: other.into(),
                        line: line(fb),
                    })
                }
            }
        }
    }
    for (r, node) in reactions.iter().zip(list_items(model, "listOfReactions", "reaction")) {
        if r.lower_bound.is_nan() || r.upper_bound.is_nan() {
            return Err(FbcError::InvalidValue {
                element: "reaction".into(),
                attribute: "flux bound",
                expected: "a number",
                found: "NaN".into(),
                line: line(node),
            });
        }
    }

    let objective = read_objective(model, &reaction_of)?;
    Ok(FbaProblem { objective, reactions, species })
}

fn read_objective(
    model: Node,
    reaction_of: &dyn Fn(Node, &str) -> Result<usize, FbcError>,
) -> Result<Objective, FbcError> {
    let no_objective = FbcError::NoObjective { line: line(model) };
    let list = fbc_children(model, "listOfObjectives").next().ok_or(no_objective)?;
    let objectives: Vec<Node> = fbc_children(list, "objective").collect();
    // fbc requires activeObjective; with a single objective its absence is harmless.
    let chosen = match fbc_attr(list, "activeObjective") {
        Some(active) => *objectives.iter().find(|o| fbc_attr(**o, "id") == Some(active)).ok_or_else(|| {
            FbcError::UnknownReference {
                element: "listOfObjectives".into(),
                kind: "objective",
                id: active.into(),
                line: line(list),
            }
        })?,
        None => match objectives.as_slice() {
            [only] => *only,
            [] => return Err(FbcError::NoObjective { line: line(list) }),
            [_, _, ..] => {
                return Err(FbcError::MissingAttribute {
                    element: "listOfObjectives".into(),
                    attribute: "activeObjective",
                    line: line(list),
                })
            }
        },
    };
    let id = require(chosen, "id", fbc_attr(chosen, "id"))?.to_string();
    let direction = match require(chosen, "type", fbc_attr(chosen, "type"))? {
        "maximize" | "max" => Direction::Maximize,
        "minimize" | "min" => Direction::Minimize,
        other => {
            return Err(FbcError::InvalidValue {
                element: "objective".into(),
                attribute: "type",
                expected: "maximize or minimize",
                found: other.into(),
                line: line(chosen),
            })
        }
    };
    let mut coefficients: Vec<(usize, f64)> = Vec::new();
    for fo in fbc_children(chosen, "listOfFluxObjectives").flat_map(|l| fbc_children(l, "fluxObjective")) {
        if fbc_attr(fo, "variableType").is_some_and(|t| t != "linear") {
            return Err(FbcError::Unsupported {
                element: "fluxObjective".into(),
                why: "only linear objectives are solved (fbc v3 variableType)",
                line: line(fo),
            });
        }
        let reaction = reaction_of(fo, require(fo, "reaction", fbc_attr(fo, "reaction"))?)?;
        let raw = require(fo, "coefficient", fbc_attr(fo, "coefficient"))?;
        let c = number(fo, "coefficient", raw)?;
        if !c.is_finite() {
            return Err(FbcError::InvalidValue {
                element: "fluxObjective".into(),
                attribute: "coefficient",
                expected: "a finite number",
                found: raw.into(),
                line: line(fo),
            });
        }
        match coefficients.iter_mut().find(|(r, _)| *r == reaction) {
            Some((_, v)) => *v += c,
            None => coefficients.push((reaction, c)),
        }
    }
    Ok(Objective { id, direction, coefficients })
}

/// fbc v3 user constraints change the LP; solving without them would give a
/// plausible but wrong answer, so they are refused.
fn reject_unsupported(model: Node) -> Result<(), FbcError> {
    if let Some(node) = fbc_children(model, "listOfUserDefinedConstraints").next() {
        return Err(FbcError::Unsupported {
            element: "fbc:listOfUserDefinedConstraints".into(),
            why: "fbc v3 user-defined constraints are not solved",
            line: line(node),
        });
    }
    Ok(())
}

/// Elements `<item>` of every `<list>` child of `parent`, in document order.
fn list_items<'a, 'input: 'a>(
    parent: Node<'a, 'input>,
    list: &'a str,
    item: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    children_named(parent, list).flat_map(move |l| children_named(l, item))
}

fn duplicate(node: Node, id: &str) -> FbcError {
    FbcError::DuplicateId { element: name(node).into(), id: id.into(), line: line(node) }
}

/// What an identifier in the model stands for, as far as constant math cares.
#[derive(Clone, Copy)]
enum Declared<'a, 'input> {
    /// A parameter, compartment or species reference, with its attribute value.
    Value { value: Option<f64>, node: Node<'a, 'input> },
    /// A species or reaction: their values are not constants of the LP.
    Other(&'static str),
}

/// Constant values of parameters, compartments and stoichiometries, after
/// initial assignments and assignment rules.
struct Env<'a, 'input> {
    declared: HashMap<&'a str, Declared<'a, 'input>>,
    parameters: HashSet<&'a str>,
    /// The `<math>` of the initial assignment or assignment rule for an id.
    assigned: HashMap<&'a str, Node<'a, 'input>>,
    cache: HashMap<String, f64>,
    in_progress: HashSet<String>,
}

impl<'a, 'input> Env<'a, 'input> {
    fn new(model: Node<'a, 'input>) -> Result<Self, FbcError> {
        let mut declared = HashMap::new();
        let mut parameters = HashSet::new();
        let mut declare = |node: Node<'a, 'input>, attribute: &'static str| -> Result<Option<&'a str>, FbcError> {
            let Some(id) = node.attribute("id") else {
                return Ok(None);
            };
            let value = node.attribute(attribute).map(|v| number(node, attribute, v)).transpose()?;
            declared.insert(id, Declared::Value { value, node });
            Ok(Some(id))
        };
        for p in list_items(model, "listOfParameters", "parameter") {
            if let Some(id) = declare(p, "value")? {
                parameters.insert(id);
            }
        }
        for c in list_items(model, "listOfCompartments", "compartment") {
            declare(c, "size")?;
        }
        for r in list_items(model, "listOfReactions", "reaction") {
            for list in ["listOfReactants", "listOfProducts"] {
                for sr in list_items(r, list, "speciesReference") {
                    declare(sr, "stoichiometry")?;
                }
            }
        }
        for s in list_items(model, "listOfSpecies", "species") {
            if let Some(id) = s.attribute("id") {
                declared.insert(id, Declared::Other("species"));
            }
        }
        for r in list_items(model, "listOfReactions", "reaction") {
            if let Some(id) = r.attribute("id") {
                declared.insert(id, Declared::Other("reaction"));
            }
        }

        let mut assigned = HashMap::new();
        let targets = list_items(model, "listOfInitialAssignments", "initialAssignment")
            .map(|n| (n, "symbol"))
            .chain(list_items(model, "listOfRules", "assignmentRule").map(|n| (n, "variable")));
        for (node, attribute) in targets {
            let target = require(node, attribute, node.attribute(attribute))?;
            // An assignment without math leaves the declared value in force.
            if let Some(math) = node.children().find(|c| c.is_element() && name(*c) == "math") {
                assigned.insert(target, math);
            }
        }
        Ok(Env { declared, parameters, assigned, cache: HashMap::new(), in_progress: HashSet::new() })
    }

    /// The value of the parameter a v2 flux bound attribute names.
    fn parameter(&mut self, id: &str, reaction: Node) -> Result<f64, FbcError> {
        if !self.parameters.contains(id) {
            return Err(FbcError::UnknownReference {
                element: "reaction".into(),
                kind: "parameter (fbc flux bound)",
                id: id.into(),
                line: line(reaction),
            });
        }
        self.value(id, reaction)
    }

    fn stoichiometry(&mut self, sr: Node) -> Result<f64, FbcError> {
        if let Some(sm) = children_named(sr, "stoichiometryMath").next() {
            return Err(FbcError::Unsupported {
                element: "stoichiometryMath".into(),
                why: "SBML Level 2 stoichiometryMath has no meaning in fbc (Level 3) models",
                line: line(sm),
            });
        }
        match sr.attribute("id") {
            Some(id) if self.assigned.contains_key(id) => self.value(id, sr),
            // SBML L3 gives stoichiometry no default; 1 is what every FBA tool assumes.
            _ => sr.attribute("stoichiometry").map_or(Ok(1.0), |v| number(sr, "stoichiometry", v)),
        }
    }

    /// The value of `id`, used at `at`.
    fn value(&mut self, id: &str, at: Node) -> Result<f64, FbcError> {
        if let Some(v) = self.cache.get(id) {
            return Ok(*v);
        }
        let value = if let Some(math) = self.assigned.get(id).copied() {
            if !self.in_progress.insert(id.to_string()) {
                return Err(FbcError::CircularAssignment { id: id.into(), line: line(math) });
            }
            let result = eval_math(math, &mut |sym, node| self.value(sym, node));
            self.in_progress.remove(id);
            result?
        } else {
            match self.declared.get(id).copied() {
                Some(Declared::Value { value: Some(v), .. }) => v,
                Some(Declared::Value { value: None, node }) => {
                    // A species reference without stoichiometry attribute defaults like above.
                    if name(node) == "speciesReference" {
                        1.0
                    } else {
                        return Err(FbcError::NoValue { id: id.into(), line: line(node) });
                    }
                }
                Some(Declared::Other(kind)) => {
                    return Err(FbcError::Unsupported {
                        element: name(at).into(),
                        why: match kind {
                            "species" => "species amounts are not constants of a flux balance problem",
                            _ => "reaction rates are the unknowns of a flux balance problem, not constants",
                        },
                        line: line(at),
                    })
                }
                None => {
                    return Err(FbcError::UnknownReference {
                        element: name(at).into(),
                        kind: "symbol",
                        id: id.into(),
                        line: line(at),
                    })
                }
            }
        };
        self.cache.insert(id.to_string(), value);
        Ok(value)
    }
}
