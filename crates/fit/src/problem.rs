//! A PEtab v1 problem as read from its files: plain data, checked for
//! internal consistency (ids exist, numbers parse) but not against the model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::tsv::{parse_number, Table};
use crate::yaml::{self, Yaml};
use crate::{At, FitError};

/// A PEtab v1 parameter-estimation problem.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The problem yaml file.
    pub yaml: PathBuf,
    /// The SBML model.
    pub model: PathBuf,
    pub parameters: Vec<Parameter>,
    pub observables: Vec<Observable>,
    pub conditions: Vec<Condition>,
    pub measurements: Vec<Measurement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Lin,
    Log,
    Log10,
}

impl Scale {
    /// A linear value on this scale.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Scale::Lin => x,
            Scale::Log => x.ln(),
            Scale::Log10 => x.log10(),
        }
    }
    /// A value on this scale back on the linear scale.
    pub fn unapply(self, x: f64) -> f64 {
        match self {
            Scale::Lin => x,
            Scale::Log => x.exp(),
            Scale::Log10 => 10f64.powf(x),
        }
    }
}

/// A row of the parameter table. Values are on the linear scale.
#[derive(Clone, Debug)]
pub struct Parameter {
    pub id: String,
    pub scale: Scale,
    pub lower: f64,
    pub upper: f64,
    pub nominal: f64,
    pub estimate: bool,
    pub prior: Option<Prior>,
    pub at: At,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prior {
    pub kind: PriorKind,
    /// The first and second `objectivePriorParameters` (e.g. mean and
    /// standard deviation; lower and upper bound for the uniform ones).
    pub a: f64,
    pub b: f64,
}

/// PEtab v1 `objectivePriorType`. The `ParameterScale*` kinds take the
/// parameter on its scale; the others on the linear scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorKind {
    Uniform,
    Normal,
    Laplace,
    LogNormal,
    LogLaplace,
    ParameterScaleUniform,
    ParameterScaleNormal,
    ParameterScaleLaplace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transformation {
    Lin,
    Log,
    Log10,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseDistribution {
    Normal,
    Laplace,
}

/// A row of the observable table.
#[derive(Clone, Debug)]
pub struct Observable {
    pub id: String,
    pub formula: String,
    pub noise_formula: String,
    pub transformation: Transformation,
    pub noise: NoiseDistribution,
    pub at: At,
}

/// A number, or the id of a row of the parameter table.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Parameter(String),
}

/// A row of the condition table: what it sets (model parameter, compartment
/// or species id) to what. A `NaN` number means "keep".
#[derive(Clone, Debug)]
pub struct Condition {
    pub id: String,
    pub values: Vec<(String, Value)>,
    pub at: At,
}

/// A row of the measurement table.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub observable: String,
    pub preequilibration: Option<String>,
    pub simulation: String,
    pub value: f64,
    /// `inf` for a steady-state measurement.
    pub time: f64,
    pub observable_parameters: Vec<Value>,
    pub noise_parameters: Vec<Value>,
    pub at: At,
}

impl Problem {
    /// The parameter-table row of an id.
    pub fn parameter_index(&self, id: &str) -> Option<usize> {
        self.parameters.iter().position(|p| p.id == id)
    }

    /// The nominal values of all parameters (linear scale, table order).
    pub fn nominal(&self) -> Vec<f64> {
        self.parameters.iter().map(|p| p.nominal).collect()
    }
}

/// Reads a PEtab v1 problem from its yaml file. Several files per table are
/// concatenated; only single-model problems are supported.
pub fn read(yaml_path: &Path) -> Result<Problem, FitError> {
    let text =
        std::fs::read_to_string(yaml_path).map_err(|error| FitError::Io { path: yaml_path.to_path_buf(), error })?;
    let doc = yaml::parse(&text, yaml_path)?;
    let dir = yaml_path.parent().unwrap_or(Path::new("."));
    let yerr = |line: usize, problem: String| FitError::Yaml { file: yaml_path.to_path_buf(), line, problem };

    match doc.get("format_version") {
        Some(Yaml::Scalar { value, .. }) if value == "1" || value.starts_with("1.") => {}
        Some(v) => return Err(yerr(v.line(), "only PEtab format_version 1 is supported".into())),
        None => return Err(yerr(1, "missing 'format_version'".into())),
    }
    let parameter_files = files(&doc, "parameter_file", yaml_path)?;
    let problems = match doc.get("problems") {
        Some(Yaml::List { items, line }) => {
            if items.len() != 1 {
                return Err(yerr(
                    *line,
                    format!("exactly one entry under 'problems' is supported, found {}", items.len()),
                ));
            }
            &items[0]
        }
        Some(v) => return Err(yerr(v.line(), "'problems' must be a list".into())),
        None => return Err(yerr(1, "missing 'problems'".into())),
    };
    let sbml = files(problems, "sbml_files", yaml_path)?;
    if sbml.len() != 1 {
        return Err(yerr(problems.line(), format!("exactly one SBML file is supported, found {}", sbml.len())));
    }
    let model = dir.join(&sbml[0]);

    let mut parameters = Vec::new();
    for f in &parameter_files {
        read_parameters(&Table::read(&dir.join(f))?, &mut parameters)?;
    }
    let mut observables = Vec::new();
    for f in files(problems, "observable_files", yaml_path)? {
        read_observables(&Table::read(&dir.join(f))?, &mut observables)?;
    }
    let mut conditions = Vec::new();
    for f in files(problems, "condition_files", yaml_path)? {
        read_conditions(&Table::read(&dir.join(f))?, &mut conditions)?;
    }
    let mut measurements = Vec::new();
    for f in files(problems, "measurement_files", yaml_path)? {
        read_measurements(&Table::read(&dir.join(f))?, &mut measurements)?;
    }
    let problem = Problem { yaml: yaml_path.to_path_buf(), model, parameters, observables, conditions, measurements };
    check_references(&problem)?;
    Ok(problem)
}

/// A yaml entry that is one file name or a list of them.
fn files(map: &Yaml, key: &str, file: &Path) -> Result<Vec<String>, FitError> {
    match map.get(key) {
        Some(Yaml::Scalar { value, .. }) if !value.is_empty() => Ok(vec![value.clone()]),
        Some(Yaml::List { items, .. }) => items
            .iter()
            .map(|i| match i {
                Yaml::Scalar { value, .. } => Ok(value.clone()),
                other => Err(FitError::Yaml {
                    file: file.to_path_buf(),
                    line: other.line(),
                    problem: format!("'{key}' must list file names"),
                }),
            })
            .collect(),
        Some(v) => Err(FitError::Yaml {
            file: file.to_path_buf(),
            line: v.line(),
            problem: format!("'{key}' must be a file name or a list of them"),
        }),
        None => Err(FitError::Yaml { file: file.to_path_buf(), line: map.line(), problem: format!("missing '{key}'") }),
    }
}

fn check_id(t: &Table, line: usize, col: &str, id: &str) -> Result<(), FitError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(FitError::Value { at: t.at(line, col), expected: "an identifier", found: id.to_string() })
    }
}

fn read_parameters(t: &Table, out: &mut Vec<Parameter>) -> Result<(), FitError> {
    let c_id = t.required("parameterId")?;
    let c_scale = t.required("parameterScale")?;
    let c_lower = t.required("lowerBound")?;
    let c_upper = t.required("upperBound")?;
    let c_nominal = t.required("nominalValue")?;
    let c_estimate = t.required("estimate")?;
    let c_prior = t.column("objectivePriorType");
    let c_prior_p = t.column("objectivePriorParameters");
    for row in &t.rows {
        let id = t.get(row, Some(c_id)).unwrap_or("").to_string();
        check_id(t, row.line, "parameterId", &id)?;
        if let Some(first) = out.iter().find(|p: &&Parameter| p.id == id) {
            return Err(FitError::Duplicate { at: t.at(row.line, "parameterId"), id, first_line: first.at.line });
        }
        let scale = match t.get(row, Some(c_scale)).unwrap_or("") {
            "lin" => Scale::Lin,
            "log" => Scale::Log,
            "log10" => Scale::Log10,
            s => {
                return Err(FitError::Value {
                    at: t.at(row.line, "parameterScale"),
                    expected: "lin, log or log10",
                    found: s.to_string(),
                })
            }
        };
        let estimate = match t.get(row, Some(c_estimate)).unwrap_or("") {
            "1" => true,
            "0" => false,
            s => return Err(FitError::Value { at: t.at(row.line, "estimate"), expected: "0 or 1", found: s.into() }),
        };
        // Bounds only matter for estimated parameters (PEtab lets fixed ones leave them empty).
        let bound = |col: usize| -> Result<f64, FitError> {
            match t.get(row, Some(col)) {
                None if !estimate => Ok(f64::NAN),
                _ => t.number(row, col),
            }
        };
        let lower = bound(c_lower)?;
        let upper = bound(c_upper)?;
        let nominal = t.number(row, c_nominal)?;
        let prior = match t.get(row, c_prior) {
            None => None,
            Some(kind_s) => {
                let at = t.at(row.line, "objectivePriorType");
                let kind = match kind_s {
                    "uniform" => PriorKind::Uniform,
                    "normal" => PriorKind::Normal,
                    "laplace" => PriorKind::Laplace,
                    "logNormal" => PriorKind::LogNormal,
                    "logLaplace" => PriorKind::LogLaplace,
                    "parameterScaleUniform" => PriorKind::ParameterScaleUniform,
                    "parameterScaleNormal" => PriorKind::ParameterScaleNormal,
                    "parameterScaleLaplace" => PriorKind::ParameterScaleLaplace,
                    s => {
                        return Err(FitError::Value {
                            at,
                            expected: "a PEtab v1 objectivePriorType",
                            found: s.to_string(),
                        })
                    }
                };
                let ps = t.get(row, c_prior_p).unwrap_or("");
                let nums: Vec<Option<f64>> = ps.split(';').map(parse_number).collect();
                match nums.as_slice() {
                    [Some(a), Some(b)] => Some(Prior { kind, a: *a, b: *b }),
                    // The uniform priors default to the bounds, on the matching scale.
                    _ if ps.is_empty() && kind == PriorKind::ParameterScaleUniform => {
                        Some(Prior { kind, a: scale.apply(lower), b: scale.apply(upper) })
                    }
                    _ if ps.is_empty() && kind == PriorKind::Uniform => Some(Prior { kind, a: lower, b: upper }),
                    _ => {
                        return Err(FitError::Value {
                            at: t.at(row.line, "objectivePriorParameters"),
                            expected: "two numbers separated by ';'",
                            found: ps.to_string(),
                        })
                    }
                }
            }
        };
        out.push(Parameter { id, scale, lower, upper, nominal, estimate, prior, at: t.at(row.line, "") });
    }
    Ok(())
}

fn read_observables(t: &Table, out: &mut Vec<Observable>) -> Result<(), FitError> {
    let c_id = t.required("observableId")?;
    let c_formula = t.required("observableFormula")?;
    let c_noise = t.required("noiseFormula")?;
    let c_trans = t.column("observableTransformation");
    let c_dist = t.column("noiseDistribution");
    for row in &t.rows {
        let id = t.get(row, Some(c_id)).unwrap_or("").to_string();
        check_id(t, row.line, "observableId", &id)?;
        if let Some(first) = out.iter().find(|o: &&Observable| o.id == id) {
            return Err(FitError::Duplicate { at: t.at(row.line, "observableId"), id, first_line: first.at.line });
        }
        let transformation = match t.get(row, c_trans).unwrap_or("lin") {
            "lin" => Transformation::Lin,
            "log" => Transformation::Log,
            "log10" => Transformation::Log10,
            s => {
                return Err(FitError::Value {
                    at: t.at(row.line, "observableTransformation"),
                    expected: "lin, log or log10",
                    found: s.to_string(),
                })
            }
        };
        let noise = match t.get(row, c_dist).unwrap_or("normal") {
            "normal" => NoiseDistribution::Normal,
            "laplace" => NoiseDistribution::Laplace,
            s => {
                return Err(FitError::Value {
                    at: t.at(row.line, "noiseDistribution"),
                    expected: "normal or laplace",
                    found: s.to_string(),
                })
            }
        };
        let formula = t.get(row, Some(c_formula)).unwrap_or("").to_string();
        let noise_formula = t.get(row, Some(c_noise)).unwrap_or("").to_string();
        if noise_formula.is_empty() {
            return Err(FitError::Value {
                at: t.at(row.line, "noiseFormula"),
                expected: "a formula",
                found: String::new(),
            });
        }
        out.push(Observable { id, formula, noise_formula, transformation, noise, at: t.at(row.line, "") });
    }
    Ok(())
}

/// A number or a parameter id (checked against the parameter table later).
fn value(t: &Table, line: usize, col: &str, s: &str) -> Result<Value, FitError> {
    if let Some(x) = parse_number(s) {
        return Ok(Value::Number(x));
    }
    check_id(t, line, col, s)?;
    Ok(Value::Parameter(s.to_string()))
}

fn read_conditions(t: &Table, out: &mut Vec<Condition>) -> Result<(), FitError> {
    let c_id = t.required("conditionId")?;
    for row in &t.rows {
        let id = t.get(row, Some(c_id)).unwrap_or("").to_string();
        check_id(t, row.line, "conditionId", &id)?;
        if let Some(first) = out.iter().find(|c: &&Condition| c.id == id) {
            return Err(FitError::Duplicate { at: t.at(row.line, "conditionId"), id, first_line: first.at.line });
        }
        let mut values = Vec::new();
        for (j, name) in t.header.iter().enumerate() {
            if name == "conditionId" || name == "conditionName" {
                continue;
            }
            // An empty cell keeps the model's value, as NaN does.
            let v = match t.get(row, Some(j)) {
                None => Value::Number(f64::NAN),
                Some(s) => value(t, row.line, name, s)?,
            };
            values.push((name.clone(), v));
        }
        out.push(Condition { id, values, at: t.at(row.line, "") });
    }
    Ok(())
}

fn read_measurements(t: &Table, out: &mut Vec<Measurement>) -> Result<(), FitError> {
    let c_obs = t.required("observableId")?;
    let c_sim = t.required("simulationConditionId")?;
    let c_meas = t.required("measurement")?;
    let c_time = t.required("time")?;
    let c_pre = t.column("preequilibrationConditionId");
    let c_op = t.column("observableParameters");
    let c_np = t.column("noiseParameters");
    let list = |row: &crate::tsv::Row, col: Option<usize>, name: &str| -> Result<Vec<Value>, FitError> {
        match t.get(row, col) {
            None => Ok(Vec::new()),
            Some(s) => s.split(';').map(|p| value(t, row.line, name, p.trim())).collect(),
        }
    };
    for row in &t.rows {
        let time = t.number(row, c_time)?;
        if time.is_nan() || time < 0.0 {
            return Err(FitError::Value {
                at: t.at(row.line, "time"),
                expected: "a time >= 0 or inf",
                found: t.get(row, Some(c_time)).unwrap_or("").to_string(),
            });
        }
        let value = t.number(row, c_meas)?;
        if !value.is_finite() {
            return Err(FitError::Value {
                at: t.at(row.line, "measurement"),
                expected: "a finite number",
                found: t.get(row, Some(c_meas)).unwrap_or("").to_string(),
            });
        }
        out.push(Measurement {
            observable: t.get(row, Some(c_obs)).unwrap_or("").to_string(),
            preequilibration: t.get(row, c_pre).map(str::to_string),
            simulation: t.get(row, Some(c_sim)).unwrap_or("").to_string(),
            value,
            time,
            observable_parameters: list(row, c_op, "observableParameters")?,
            noise_parameters: list(row, c_np, "noiseParameters")?,
            at: t.at(row.line, ""),
        });
    }
    Ok(())
}

/// Every id a table refers to exists in the table it names.
fn check_references(p: &Problem) -> Result<(), FitError> {
    let params: HashMap<&str, ()> = p.parameters.iter().map(|x| (x.id.as_str(), ())).collect();
    let conds: HashMap<&str, ()> = p.conditions.iter().map(|x| (x.id.as_str(), ())).collect();
    let obs: HashMap<&str, ()> = p.observables.iter().map(|x| (x.id.as_str(), ())).collect();
    let with_col = |at: &At, col: &str| At { column: col.to_string(), ..at.clone() };
    let check_value = |v: &Value, at: At| match v {
        Value::Parameter(id) if !params.contains_key(id.as_str()) => {
            Err(FitError::UnknownId { at, what: "parameter (not in the parameter table)", id: id.clone() })
        }
        _ => Ok(()),
    };
    for c in &p.conditions {
        for (col, v) in &c.values {
            check_value(v, with_col(&c.at, col))?;
        }
    }
    for m in &p.measurements {
        if !obs.contains_key(m.observable.as_str()) {
            return Err(FitError::UnknownId {
                at: with_col(&m.at, "observableId"),
                what: "observable",
                id: m.observable.clone(),
            });
        }
        for (col, id) in [
            ("simulationConditionId", Some(&m.simulation)),
            ("preequilibrationConditionId", m.preequilibration.as_ref()),
        ] {
            if let Some(id) = id {
                if !conds.contains_key(id.as_str()) {
                    return Err(FitError::UnknownId { at: with_col(&m.at, col), what: "condition", id: id.clone() });
                }
            }
        }
        for v in &m.observable_parameters {
            check_value(v, with_col(&m.at, "observableParameters"))?;
        }
        for v in &m.noise_parameters {
            check_value(v, with_col(&m.at, "noiseParameters"))?;
        }
    }
    Ok(())
}
