//! Simulation for the API: compiled models cached by version hash (one
//! compile serves every later request), interactive runs with limits, and
//! a model's variables with their initial values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use vht_ir::{Expr, Model, Role, SymbolKind};
use vht_sim::{Column, Simulator, TimeCourse};

/// A compiled model and the ids/names the API shows.
pub struct Compiled {
    pub sim: Simulator,
    /// SBML `name` attributes by id.
    pub names: HashMap<String, String>,
}

#[derive(Default)]
pub struct Cache {
    map: Mutex<HashMap<String, Arc<Compiled>>>,
}

/// Compiled models kept at most; beyond this the cache starts again (the
/// catalogue is small, and a compile is a fraction of a second).
const CACHE_LIMIT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Load(String),
    #[error("'{id}' is not in the model")]
    Unknown { id: String },
    #[error("'{id}' is not a constant parameter (rules or reactions determine it), so it cannot be set")]
    NotSettable { id: String },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("simulation failed: {0}")]
    Failed(String),
}

impl Cache {
    /// The compiled model of a version (compiling it on first use; call from a blocking thread).
    pub fn get(&self, hash: &str, sbml: &str) -> Result<Arc<Compiled>, SimulateError> {
        if let Some(c) = self.map.lock().ok().and_then(|m| m.get(hash).cloned()) {
            return Ok(c);
        }
        let (model, _) = vht_lower::load_str(sbml, None).map_err(|e| SimulateError::Load(e.to_string()))?;
        let sim =
            Simulator::new(model, &vht_codegen::Options::default()).map_err(|e| SimulateError::Load(e.to_string()))?;
        let c = Arc::new(Compiled { sim, names: sbml_names(sbml) });
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= CACHE_LIMIT {
                m.clear();
            }
            m.insert(hash.to_string(), c.clone());
        }
        Ok(c)
    }
}

fn sbml_names(sbml: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Ok(doc) = roxmltree::Document::parse(sbml) {
        for n in doc.descendants().filter(|n| matches!(n.tag_name().name(), "species" | "parameter" | "compartment")) {
            if let (Some(id), Some(name)) = (n.attribute("id"), n.attribute("name")) {
                out.insert(id.to_string(), name.to_string());
            }
        }
    }
    out
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimRequest {
    pub model: String,
    #[serde(default = "latest")]
    pub version: String,
    #[serde(default)]
    pub start: f64,
    pub end: f64,
    #[serde(default = "default_points")]
    pub points: usize,
    #[serde(default)]
    pub set: HashMap<String, f64>,
    #[serde(default)]
    pub select: Vec<String>,
}

fn latest() -> String {
    "latest".into()
}
fn default_points() -> usize {
    101
}

/// The default columns: every species, then every parameter or compartment that changes.
pub fn default_columns(model: &Model) -> Vec<Column> {
    let event_targets: Vec<_> = model.events.iter().flat_map(|e| e.assignments.iter().map(|x| x.target)).collect();
    let mut cols: Vec<Column> =
        model.species.iter().map(|v| Column { name: model.name(v.sym).to_string(), expr: Expr::Sym(v.sym) }).collect();
    for (i, sym) in model.symbols.iter().enumerate() {
        let s = vht_ir::Sym(i as u32);
        let varies = !matches!(sym.kind, SymbolKind::Parameter) || event_targets.contains(&s);
        if matches!(sym.role, Role::Parameter | Role::Compartment) && varies {
            cols.push(Column { name: sym.name.clone(), expr: Expr::Sym(s) });
        }
    }
    cols
}

pub fn columns(model: &Model, select: &[String]) -> Result<Vec<Column>, SimulateError> {
    if select.is_empty() {
        return Ok(default_columns(model));
    }
    select
        .iter()
        .map(|id| match model.lookup(id) {
            Some(s) => Ok(Column { name: id.clone(), expr: Expr::Sym(s) }),
            None => Err(SimulateError::Unknown { id: id.clone() }),
        })
        .collect()
}

pub fn overrides(model: &Model, set: &HashMap<String, f64>) -> Result<Vec<(vht_ir::Sym, f64)>, SimulateError> {
    let mut out = Vec::new();
    let mut keys: Vec<_> = set.keys().collect();
    keys.sort();
    for id in keys {
        let v = set[id];
        let s = model.lookup(id).ok_or_else(|| SimulateError::Unknown { id: id.clone() })?;
        if !matches!(model.symbol(s).kind, SymbolKind::Parameter) {
            return Err(SimulateError::NotSettable { id: id.clone() });
        }
        if !v.is_finite() {
            return Err(SimulateError::Invalid { field: "set", message: format!("{id}: {v} is not a finite number") });
        }
        out.push((s, v));
    }
    Ok(out)
}

/// One interactive time course: `{columns: ["time", ...], rows: [[...], ...]}`.
pub fn simulate(c: &Compiled, req: &SimRequest, max_points: usize, max_secs: f64) -> Result<Value, SimulateError> {
    if !(req.start.is_finite() && req.end.is_finite() && req.end > req.start) {
        return Err(SimulateError::Invalid {
            field: "end",
            message: format!("must be a number after start ({}; got {})", req.start, req.end),
        });
    }
    if req.points < 2 || req.points > max_points {
        return Err(SimulateError::Invalid {
            field: "points",
            message: format!("must be between 2 and {max_points} (got {})", req.points),
        });
    }
    let model = &c.sim.model;
    let cols = columns(model, &req.select)?;
    let ov = overrides(model, &req.set)?;
    let outputs = c.sim.outputs(&cols).map_err(|e| SimulateError::Failed(e.to_string()))?;
    let tc = TimeCourse {
        start: req.start,
        end: req.end,
        points: req.points,
        deadline: Some(Instant::now() + Duration::from_secs_f64(max_secs)),
        ..TimeCourse::default()
    };
    let traj = vht_sim::simulate(&c.sim, &tc, &outputs, &ov).map_err(|e| SimulateError::Failed(e.to_string()))?;
    let mut names = vec!["time".to_string()];
    names.extend(traj.names.iter().cloned());
    let rows: Vec<Vec<f64>> = traj
        .times
        .iter()
        .enumerate()
        .map(|(i, t)| std::iter::once(*t).chain(traj.row(i).iter().copied()).collect())
        .collect();
    Ok(json!({"columns": names, "rows": rows}))
}

/// Species, parameters (constant ones: those that can be set) and
/// compartments, with their values at time 0.
pub fn variables(c: &Compiled) -> Result<Value, SimulateError> {
    let model = &c.sim.model;
    let mut species = Vec::new();
    let mut parameters = Vec::new();
    let mut compartments = Vec::new();
    let mut cols = Vec::new();
    for v in &model.species {
        cols.push(Column { name: model.name(v.sym).to_string(), expr: Expr::Sym(v.sym) });
    }
    for (i, s) in model.symbols.iter().enumerate() {
        let sym = vht_ir::Sym(i as u32);
        let settable = matches!(s.kind, SymbolKind::Parameter) && !s.name.contains('.');
        if (s.role == Role::Parameter && settable) || s.role == Role::Compartment {
            cols.push(Column { name: s.name.clone(), expr: Expr::Sym(sym) });
        }
    }
    let outputs = c.sim.outputs(&cols).map_err(|e| SimulateError::Failed(e.to_string()))?;
    let tc = TimeCourse {
        start: 0.0,
        times: Some(vec![0.0]),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        ..TimeCourse::default()
    };
    // A model whose initial state cannot be computed still lists its variables, without values.
    let initial: Option<Vec<f64>> = vht_sim::simulate(&c.sim, &tc, &outputs, &[]).ok().map(|t| t.row(0).to_vec());
    for (k, col) in cols.iter().enumerate() {
        let value = initial.as_ref().and_then(|v| v.get(k)).copied().filter(|x| x.is_finite());
        let name = c.names.get(&col.name).cloned().unwrap_or_else(|| col.name.clone());
        let sym = model.lookup(&col.name);
        let role = sym.map(|s| model.symbol(s).role);
        if k < model.species.len() {
            species.push(json!({"id": col.name, "name": name, "initial": value}));
        } else if role == Some(Role::Compartment) {
            compartments.push(json!({"id": col.name, "name": name, "size": value,
                "constant": sym.is_some_and(|s| matches!(model.symbol(s).kind, SymbolKind::Parameter))}));
        } else {
            parameters.push(json!({"id": col.name, "name": name, "value": value}));
        }
    }
    Ok(json!({"species": species, "parameters": parameters, "compartments": compartments}))
}
