//! A small MathML evaluator for the constant expressions that set flux bounds
//! and stoichiometries (initial assignments, assignment rules).
//!
//! It evaluates to one `f64` with the SBML conventions (booleans are 1/0,
//! `time` is 0 because FBA is a steady state). It knows no function
//! definitions, delays or species values: those are reported as
//! [`FbcError::Unsupported`] rather than guessed.

use roxmltree::Node;

use crate::error::FbcError;
use crate::xml::{line, name};

/// Looks a `<ci>` identifier up; the node is where it is used (for errors).
pub(crate) type Lookup<'l> = dyn FnMut(&str, Node) -> Result<f64, FbcError> + 'l;

/// Evaluates the single expression inside a `<math>` element.
pub(crate) fn eval_math(math: Node, lookup: &mut Lookup) -> Result<f64, FbcError> {
    let mut children = math.children().filter(|c| c.is_element());
    match children.next() {
        Some(expr) => eval(expr, lookup),
        None => Err(FbcError::MissingElement { parent: "math".into(), expected: "an expression", line: line(math) }),
    }
}

fn eval(node: Node, lookup: &mut Lookup) -> Result<f64, FbcError> {
    match name(node) {
        "cn" => cn(node),
        "ci" => {
            let id = node.text().unwrap_or("").trim();
            lookup(id, node)
        }
        "true" => Ok(1.0),
        "false" => Ok(0.0),
        "pi" => Ok(std::f64::consts::PI),
        "exponentiale" => Ok(std::f64::consts::E),
        "infinity" => Ok(f64::INFINITY),
        "notanumber" => Ok(f64::NAN),
        "csymbol" => csymbol(node),
        "apply" => apply(node, lookup),
        "piecewise" => piecewise(node, lookup),
        "semantics" => match node.children().find(|c| c.is_element()) {
            Some(inner) => eval(inner, lookup),
            None => Err(missing(node, "an expression")),
        },
        other => Err(unsupported(node, other, "not a MathML element of SBML")),
    }
}

fn csymbol(node: Node) -> Result<f64, FbcError> {
    let url = node.attribute("definitionURL").unwrap_or("");
    match url.rsplit('/').next() {
        // A flux balance solution is a steady state: bounds are evaluated at t = 0.
        Some("time") => Ok(0.0),
        Some("avogadro") => Ok(6.022_140_76e23),
        _ => Err(unsupported(node, "csymbol", "only time and avogadro csymbols are constants")),
    }
}

fn cn(node: Node) -> Result<f64, FbcError> {
    let texts: Vec<&str> = node
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let kind = node.attribute("type").unwrap_or("real");
    let parse = |s: &str| parse_number(s).ok_or_else(|| invalid_cn(node, s));
    match (kind, texts.as_slice()) {
        ("real" | "integer", [t]) => parse(t),
        ("e-notation", [mantissa, exponent]) => Ok(parse(mantissa)? * 10f64.powf(parse(exponent)?)),
        ("rational", [numerator, denominator]) => Ok(parse(numerator)? / parse(denominator)?),
        _ => Err(invalid_cn(node, &texts.join(" <sep/> "))),
    }
}

fn invalid_cn(node: Node, found: &str) -> FbcError {
    FbcError::InvalidValue {
        element: "cn".into(),
        attribute: "text",
        expected: "a number matching the cn type",
        found: found.into(),
        line: line(node),
    }
}

/// Parses an SBML/MathML number: Rust's float syntax plus the `INF`, `-INF`
/// and `NaN` spellings SBML files use.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    match s {
        "INF" | "+INF" | "inf" | "+inf" | "Infinity" => Some(f64::INFINITY),
        "-INF" | "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn piecewise(node: Node, lookup: &mut Lookup) -> Result<f64, FbcError> {
    for part in node.children().filter(|c| c.is_element()) {
        let args: Vec<Node> = part.children().filter(|c| c.is_element()).collect();
        match (name(part), args.as_slice()) {
            ("piece", [value, condition]) => {
                if eval(*condition, lookup)? != 0.0 {
                    return eval(*value, lookup);
                }
            }
            ("otherwise", [value]) => return eval(*value, lookup),
            (other, _) => {
                return Err(unsupported(part, other, "expected <piece> with two children or <otherwise> with one"))
            }
        }
    }
    // SBML leaves a piecewise with no true piece and no otherwise undefined.
    Ok(f64::NAN)
}

fn apply(node: Node, lookup: &mut Lookup) -> Result<f64, FbcError> {
    let mut elements = node.children().filter(|c| c.is_element());
    let Some(op) = elements.next() else {
        return Err(missing(node, "an operator"));
    };
    // Qualifiers (degree, logbase) are not operands.
    let mut degree = None;
    let mut logbase = None;
    let mut operands = Vec::new();
    for child in elements {
        match name(child) {
            "degree" => degree = Some(qualifier(child, lookup)?),
            "logbase" => logbase = Some(qualifier(child, lookup)?),
            _ => operands.push(child),
        }
    }
    let op_name = name(op);
    if op_name == "ci" {
        return Err(unsupported(op, "ci", "function definitions are not evaluated in flux bounds"));
    }
    // `and`/`or` and relations need all operands; evaluating them eagerly is fine
    // because the expressions have no side effects.
    let mut x = Vec::with_capacity(operands.len());
    for operand in &operands {
        x.push(eval(*operand, lookup)?);
    }
    let arity = |n: usize| -> Result<(), FbcError> {
        if x.len() == n {
            Ok(())
        } else {
            Err(FbcError::InvalidValue {
                element: "apply".into(),
                attribute: "operands",
                expected: match n {
                    1 => "one operand",
                    _ => "two operands",
                },
                found: format!("{} operands of <{op_name}>", x.len()),
                line: line(node),
            })
        }
    };
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    let value = match op_name {
        "plus" => x.iter().sum(),
        "times" => x.iter().product(),
        "minus" if x.len() == 1 => -x[0],
        "minus" => {
            arity(2)?;
            x[0] - x[1]
        }
        "divide" => {
            arity(2)?;
            x[0] / x[1]
        }
        "power" => {
            arity(2)?;
            x[0].powf(x[1])
        }
        "root" => {
            arity(1)?;
            x[0].powf(1.0 / degree.unwrap_or(2.0))
        }
        "log" => {
            arity(1)?;
            x[0].ln() / logbase.unwrap_or(10.0).ln()
        }
        "min" => x.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => x.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "and" => b(x.iter().all(|v| *v != 0.0)),
        "or" => b(x.iter().any(|v| *v != 0.0)),
        "xor" => b(x.iter().filter(|v| **v != 0.0).count() % 2 == 1),
        "eq" | "neq" | "lt" | "gt" | "leq" | "geq" => {
            if x.len() < 2 {
                arity(2)?;
            }
            let holds = |a: f64, c: f64| match op_name {
                "eq" => a == c,
                "neq" => a != c,
                "lt" => a < c,
                "gt" => a > c,
                "leq" => a <= c,
                _ => a >= c,
            };
            b(x.windows(2).all(|w| holds(w[0], w[1])))
        }
        unary => {
            let f: fn(f64) -> f64 = match unary {
                "abs" => f64::abs,
                "exp" => f64::exp,
                "ln" => f64::ln,
                "floor" => f64::floor,
                "ceiling" => f64::ceil,
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tan" => f64::tan,
                "not" => |v| if v == 0.0 { 1.0 } else { 0.0 },
                _ => return Err(unsupported(op, unary, "operator not supported in constant flux-bound math")),
            };
            arity(1)?;
            f(x[0])
        }
    };
    Ok(value)
}

fn qualifier(node: Node, lookup: &mut Lookup) -> Result<f64, FbcError> {
    match node.children().find(|c| c.is_element()) {
        Some(inner) => eval(inner, lookup),
        None => Err(missing(node, "an expression")),
    }
}

fn missing(node: Node, expected: &'static str) -> FbcError {
    FbcError::MissingElement { parent: name(node).into(), expected, line: line(node) }
}

fn unsupported(node: Node, element: &str, why: &'static str) -> FbcError {
    FbcError::Unsupported { element: element.into(), why, line: line(node) }
}
