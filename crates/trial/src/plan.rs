//! From a checked spec and a model to what runs: ids resolved, one IR model
//! per arm (interventions as events, endpoint helpers as extra states and
//! events), each compiled once into a shared [`Simulator`].
//!
//! Why interventions are IR events rather than something the simulator
//! knows: the simulator already implements SBML event semantics exactly
//! (restart of the integrator at the dose, outputs at a dose time show the
//! state after it), so a bolus is just `x := x + amount` at `time >= t`.
//! Why some endpoints are extra states: an AUC integrated by the ODE solver
//! is exact to the solver's tolerance, where a trapezoid on the output grid
//! is not; a time in range is an integrated indicator whose edges are event
//! roots, so the integrator stops exactly where the variable crosses a bound.

use std::path::PathBuf;
use std::sync::Arc;

use vht_ir::{BinOp, Event, EventAssignment, Expr, Model, NaryOp, Role, Sym, SymbolKind};
use vht_sim::{Column, Outputs, Simulator};

use crate::error::{nearest, Location, TrialError};
use crate::sample::PopulationSampler;
use crate::spec::{Assignment, EndpointKind, InterventionKind, Spec};

/// A change to a quantity's value at the start of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    Add(f64),
    Set(f64),
    Scale(f64),
}

impl Change {
    fn apply(self, v: f64) -> f64 {
        match self {
            Change::Add(x) => v + x,
            Change::Set(x) => x,
            Change::Scale(x) => v * x,
        }
    }
    fn apply_expr(self, e: Expr) -> Expr {
        match self {
            Change::Add(x) => e + Expr::Num(x),
            Change::Set(x) => Expr::Num(x),
            Change::Scale(x) => e * Expr::Num(x),
        }
    }
}

/// How an endpoint is read from an arm's trajectory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EndpointRead {
    /// The column of the endpoint's variable, or of its helper state/parameter.
    pub col: usize,
    pub scale: f64,
    pub kind: EndpointKind,
}

/// One arm, ready to run: a compiled model shared by every patient.
pub struct ArmPlan {
    pub name: String,
    pub sim: Arc<Simulator>,
    pub outputs: Arc<Outputs>,
    /// Output times (sorted, distinct): the grid plus every time an endpoint reads.
    pub times: Vec<f64>,
    /// Interventions at the start time, applied to initial values.
    pub initial_changes: Vec<(Sym, Change)>,
    pub(crate) reads: Vec<EndpointRead>,
    /// The column plotted in the spaghetti plot (the first endpoint's variable).
    pub plot_col: usize,
    /// What `trajectories.parquet` holds (`[output] variables`).
    pub trajectory_columns: Vec<Column>,
}

/// The plausibility screen: a compiled model without interventions.
pub struct ScreenPlan {
    pub sim: Arc<Simulator>,
    pub outputs: Arc<Outputs>,
    pub times: Vec<f64>,
    /// For each constraint: (output row, output column).
    pub(crate) at: Vec<(usize, usize)>,
}

/// Everything a trial run needs, built once.
pub struct Plan {
    pub spec: Spec,
    /// What each sampled parameter overrides, and the factor from the
    /// spec's value to the symbol's (1 except for a species whose state is
    /// a concentration: amounts are divided by the compartment size).
    pub targets: Vec<(Sym, f64)>,
    pub arms: Vec<ArmPlan>,
    pub screen: Option<ScreenPlan>,
    pub sampler: PopulationSampler,
    /// Warnings from reading the model.
    pub diagnostics: Vec<String>,
    /// The model file's bytes hash (part of a run's fingerprint).
    pub model_hash: u64,
}

impl Plan {
    /// Loads the spec's model and builds every arm.
    pub fn new(spec: Spec) -> Result<Plan, TrialError> {
        let model_err = |message: String| TrialError::Model { model: spec.model.clone(), message };
        let bytes = std::fs::read(&spec.model).map_err(|source| TrialError::Io { path: spec.model.clone(), source })?;
        let (model, diags) = vht_lower::load(&spec.model).map_err(|e| model_err(e.to_string()))?;
        let diagnostics = diags.iter().map(|d| d.to_string()).collect();
        Plan::with_model(spec, model, diagnostics, fnv(&bytes))
    }

    /// Builds the plan for an already loaded model (tests build models in code).
    pub fn with_model(spec: Spec, model: Model, diagnostics: Vec<String>, model_hash: u64) -> Result<Plan, TrialError> {
        let r = Resolver { model: &model, model_path: &spec.model };
        let mut targets = Vec::new();
        for p in &spec.population.parameters {
            let t = r.settable(&p.id, &p.at, "sampled")?;
            targets.push(t);
        }
        if let Some(c) = &spec.population.covariates {
            for (id, at) in c.ids.iter().zip(&c.at) {
                targets.push(r.settable(id, at, "resampled")?);
            }
        }
        let grid = grid(spec.simulation.start, spec.simulation.end, spec.simulation.step);
        let mut arms = Vec::new();
        for (ai, arm) in spec.arms.iter().enumerate() {
            arms.push(build_arm(&spec, &r, ai, &arm.name, &grid)?);
        }
        let screen = if spec.population.constraints.is_empty() {
            None
        } else {
            let mut times: Vec<f64> = spec.population.constraints.iter().map(|c| c.time).collect();
            sort_dedup(&mut times);
            let mut columns: Vec<Column> = Vec::new();
            let mut at = Vec::new();
            for c in &spec.population.constraints {
                let s = r.variable(&c.variable, &c.at)?;
                let col = column_for(&mut columns, &c.variable, Expr::Sym(s));
                at.push((times.iter().position(|&t| t == c.time).unwrap_or(0), col));
            }
            let sim = Simulator::new(model.clone(), &vht_codegen::Options::default()).map_err(|e| {
                TrialError::Build { model: spec.model.clone(), arm: "(screening)".into(), message: e.to_string() }
            })?;
            let outputs = sim.outputs(&columns).map_err(|e| TrialError::Build {
                model: spec.model.clone(),
                arm: "(screening)".into(),
                message: e.to_string(),
            })?;
            Some(ScreenPlan { sim: Arc::new(sim), outputs: Arc::new(outputs), times, at })
        };
        let sampler = PopulationSampler::new(&spec.population);
        Ok(Plan { spec, targets, arms, screen, sampler, diagnostics, model_hash })
    }

    /// The arms patient `patient` (its place in the population) goes
    /// through: every arm in a crossover; under randomisation one, by
    /// permuted blocks: each block of `sum(ratios)` consecutive patients holds
    /// every arm exactly its ratio times, in an order drawn from the seed
    /// and the block. A pure function of the patient, so shards agree.
    pub fn arms_of(&self, patient: u64) -> Vec<usize> {
        let arms = &self.spec.arms;
        if self.spec.assignment == Assignment::Crossover {
            return (0..arms.len()).collect();
        }
        let block: u64 = arms.iter().map(|a| a.ratio as u64).sum::<u64>().max(1);
        let (b, j) = (patient / block, patient % block);
        let key = crate::sample::mix(crate::sample::mix(self.spec.population.seed ^ 0x7261_6e64) ^ b);
        let mut slot = crate::sample::permute(j, block, key);
        for (a, arm) in arms.iter().enumerate() {
            if slot < arm.ratio as u64 {
                return vec![a];
            }
            slot -= arm.ratio as u64;
        }
        vec![arms.len() - 1]
    }

    /// A patient's parameter overrides (spec values, converted to the
    /// targets' units), with an arm's start-time changes applied if given.
    pub fn overrides(&self, values: &[f64], arm: Option<&ArmPlan>) -> Vec<(Sym, f64)> {
        let mut out: Vec<(Sym, f64)> = self.targets.iter().zip(values).map(|(&(s, f), &v)| (s, v * f)).collect();
        if let Some(arm) = arm {
            for &(s, change) in &arm.initial_changes {
                if let Some(o) = out.iter_mut().find(|(o, _)| *o == s) {
                    o.1 = change.apply(o.1);
                }
            }
        }
        out
    }
}

/// FNV-1a: a stable hash for fingerprints (std's hasher may change between releases).
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn sort_dedup(v: &mut Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    v.dedup();
}

/// The output grid: `start, start + step, …, end` (end exactly).
fn grid(start: f64, end: f64, step: f64) -> Vec<f64> {
    let n = ((end - start) / step).round().max(1.0) as usize;
    (0..=n).map(|k| if k == n { end } else { start + (end - start) * k as f64 / n as f64 }).collect()
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn column_for(columns: &mut Vec<Column>, name: &str, expr: Expr) -> usize {
    match columns.iter().position(|c| c.name == name) {
        Some(i) => i,
        None => {
            columns.push(Column { name: name.to_string(), expr });
            columns.len() - 1
        }
    }
}

struct Resolver<'a> {
    model: &'a Model,
    model_path: &'a PathBuf,
}

impl Resolver<'_> {
    fn unknown(&self, id: &str, at: &Location, problem: &str) -> TrialError {
        TrialError::UnknownId {
            at: at.clone(),
            id: id.to_string(),
            problem: problem.to_string(),
            nearest: nearest(id, self.model.symbols.iter().map(|s| s.name.as_str()).filter(|n| !n.contains('.'))),
        }
    }

    /// What an endpoint (or a trajectory column) reads: a model id, or an
    /// expression over model ids parsed with `vht_fit`'s formula parser
    /// (the one infix grammar of the workspace that yields IR directly).
    fn quantity(&self, text: &str, expression: bool, at: &Location) -> Result<Expr, TrialError> {
        if !expression {
            return self.variable(text, at).map(Expr::Sym);
        }
        let mut unknown: Option<String> = None;
        let mut resolve = |name: &str| match self.model.lookup(name) {
            Some(s) => Some(Expr::Sym(s)),
            None => {
                unknown = Some(name.to_string());
                None
            }
        };
        vht_fit::parse_formula(text, &mut resolve).map_err(|e| match unknown.take() {
            Some(id) if e.problem.starts_with("unknown identifier") => {
                self.unknown(&id, at, &format!("(in '{text}') is not in the model {}", self.model_path.display()))
            }
            _ => TrialError::Spec {
                at: at.clone(),
                message: format!("cannot parse '{text}' at character {}: {}", e.offset + 1, e.problem),
            },
        })
    }

    /// Any model variable (for endpoints and constraints).
    fn variable(&self, id: &str, at: &Location) -> Result<Sym, TrialError> {
        self.model
            .lookup(id)
            .ok_or_else(|| self.unknown(id, at, &format!("is not in the model {}", self.model_path.display())))
    }

    /// The symbol whose value an intervention or a sample sets, and the
    /// factor from an amount to that symbol. A species is addressed by its
    /// amount: the amount state if the model integrates amounts, else its
    /// own symbol divided by a constant compartment size when it is a concentration.
    fn settable(&self, id: &str, at: &Location, what: &str) -> Result<(Sym, f64), TrialError> {
        let s = self.variable(id, at)?;
        let (target, factor) = match self.model.species_view(s) {
            Some(view) => match &view.amount {
                Expr::Sym(a) => (*a, 1.0),
                Expr::Nary(NaryOp::Mul, f) if f.len() == 2 && f[0] == Expr::Sym(s) => match self.constant(&f[1]) {
                    Some(size) if size != 0.0 => (s, 1.0 / size),
                    _ => {
                        return Err(TrialError::UnknownId {
                            at: at.clone(),
                            id: id.to_string(),
                            problem: "is a concentration in a compartment whose size is not a constant, so amounts cannot be converted".into(),
                            nearest: vec![],
                        })
                    }
                },
                _ => (s, 1.0),
            },
            None => (s, 1.0),
        };
        match self.model.symbol(target).kind {
            SymbolKind::Parameter | SymbolKind::State { .. } => Ok((target, factor)),
            SymbolKind::Assigned { .. } => Err(TrialError::UnknownId {
                at: at.clone(),
                id: id.to_string(),
                problem: format!("is defined by an assignment rule, so it cannot be {what}"),
                nearest: nearest(
                    id,
                    self.model
                        .symbols
                        .iter()
                        .filter(|x| matches!(x.kind, SymbolKind::Parameter | SymbolKind::State { .. }))
                        .map(|x| x.name.as_str())
                        .filter(|n| !n.contains('.')),
                ),
            }),
            SymbolKind::Algebraic => Err(TrialError::UnknownId {
                at: at.clone(),
                id: id.to_string(),
                problem: format!("is fixed by an algebraic rule, so it cannot be {what}"),
                nearest: vec![],
            }),
        }
    }

    fn constant(&self, e: &Expr) -> Option<f64> {
        match e {
            Expr::Num(x) => Some(*x),
            Expr::Sym(c) => match (&self.model.symbol(*c).kind, &self.model.symbol(*c).initial) {
                (SymbolKind::Parameter, Expr::Num(x)) => Some(*x),
                _ => None,
            },
            _ => None,
        }
    }
}

fn time_ge(t: f64) -> Expr {
    Expr::bin(BinOp::Ge, Expr::Time, Expr::Num(t))
}

fn event(name: String, trigger: Expr, priority: Option<f64>, assignments: Vec<EventAssignment>) -> Event {
    Event {
        name,
        trigger,
        // The trigger is taken as true before the start, so an event fires
        // only on a false-to-true change after it (start-time changes are
        // applied to initial values instead).
        initial_value: true,
        persistent: true,
        delay: None,
        priority: priority.map(Expr::Num),
        use_values_from_trigger_time: true,
        assignments,
    }
}

fn build_arm(spec: &Spec, r: &Resolver, ai: usize, name: &str, grid: &[f64]) -> Result<ArmPlan, TrialError> {
    let start = spec.simulation.start;
    let mut m = r.model.clone();
    let mut initial_changes: Vec<(Sym, Change)> = Vec::new();
    let arm = &spec.arms[ai];
    for (j, iv) in arm.interventions.iter().enumerate() {
        let what = match iv.kind {
            InterventionKind::Bolus { .. } => "dosed",
            InterventionKind::Infusion { .. } => "infused",
            _ => "set",
        };
        let (target, per) = r.settable(&iv.target, &iv.at, what)?;
        // Earlier interventions in the spec execute first at equal times.
        let priority = Some(-(j as f64));
        let assign = |value: Expr| vec![EventAssignment { target, value }];
        match iv.kind {
            InterventionKind::Bolus { amount }
            | InterventionKind::Set { value: amount }
            | InterventionKind::Scale { factor: amount } => {
                let change = match iv.kind {
                    InterventionKind::Bolus { .. } => Change::Add(amount * per),
                    InterventionKind::Set { .. } => Change::Set(amount * per),
                    _ => Change::Scale(amount),
                };
                for (k, &t) in iv.times.iter().enumerate() {
                    if t <= start {
                        initial_changes.push((target, change));
                    } else {
                        let value = change.apply_expr(Expr::Sym(target));
                        m.events.push(event(format!("trial.{name}.{j}.{k}"), time_ge(t), priority, assign(value)));
                    }
                }
            }
            InterventionKind::Infusion { rate, duration } => {
                if !matches!(m.symbol(target).kind, SymbolKind::State { .. }) {
                    return Err(TrialError::UnknownId {
                        at: iv.at.clone(),
                        id: iv.target.clone(),
                        problem: "is not integrated (it is a constant), so it cannot be infused; dose it with a bolus or set it".into(),
                        nearest: vec![],
                    });
                }
                // The infusion is an added rate term `+ u` where `u` is a new
                // parameter that events switch on and off.
                let u = m.add(&format!("trial.infusion.{j}"), Role::Internal, SymbolKind::Parameter, Expr::Num(0.0));
                if let SymbolKind::State { rate: old } = &mut m.symbols[target.index()].kind {
                    *old = std::mem::replace(old, Expr::Num(0.0)) + Expr::Sym(u);
                }
                let du = rate * per;
                let mut initial = 0.0;
                for (k, &t) in iv.times.iter().enumerate() {
                    let on = EventAssignment { target: u, value: Expr::Sym(u) + Expr::Num(du) };
                    let off = EventAssignment { target: u, value: Expr::Sym(u) - Expr::Num(du) };
                    if t <= start {
                        initial += du;
                    } else {
                        m.events.push(event(format!("trial.{name}.{j}.{k}.on"), time_ge(t), priority, vec![on]));
                    }
                    if t + duration < spec.simulation.end {
                        m.events.push(event(
                            format!("trial.{name}.{j}.{k}.off"),
                            time_ge(t + duration),
                            priority,
                            vec![off],
                        ));
                    }
                }
                m.symbols[u.index()].initial = Expr::Num(initial);
            }
        }
    }
    for &(s, change) in &initial_changes {
        let sym = &mut m.symbols[s.index()];
        sym.initial = change.apply_expr(std::mem::replace(&mut sym.initial, Expr::Num(0.0)));
    }

    let mut columns: Vec<Column> = Vec::new();
    let mut times = grid.to_vec();
    let mut reads = Vec::new();
    for (e, ep) in spec.endpoints.iter().enumerate() {
        let v = r.quantity(&ep.variable, ep.expression, &ep.at)?;
        let scaled = Expr::Num(ep.scale) * v.clone();
        let var_col = column_for(&mut columns, &ep.variable, v.clone());
        let col = match ep.kind {
            EndpointKind::Value { time } => {
                times.push(time);
                var_col
            }
            EndpointKind::Min { from, to }
            | EndpointKind::Max { from, to }
            | EndpointKind::TimeOfMin { from, to }
            | EndpointKind::TimeOfMax { from, to } => {
                times.extend([from, to]);
                var_col
            }
            EndpointKind::Auc { from, to } => {
                times.extend([from, to]);
                let q = m.add(
                    &format!("trial.auc.{e}"),
                    Role::Internal,
                    SymbolKind::State { rate: v.clone() },
                    Expr::Num(0.0),
                );
                column_for(&mut columns, &format!("trial.auc.{e}"), Expr::Sym(q))
            }
            EndpointKind::TimeInRange { low, high, from, to } => {
                times.extend([from, to]);
                let inside = Expr::Nary(
                    NaryOp::And,
                    vec![
                        Expr::bin(BinOp::Ge, scaled.clone(), Expr::Num(low)),
                        Expr::bin(BinOp::Le, scaled.clone(), Expr::Num(high)),
                    ],
                );
                let rate = Expr::Piecewise(vec![(Expr::Num(1.0), inside.clone())], Box::new(Expr::Num(0.0)));
                let q = m.add(&format!("trial.tir.{e}"), Role::Internal, SymbolKind::State { rate }, Expr::Num(0.0));
                // No assignments: the event is there for its root functions,
                // which make the integrator stop exactly at each bound crossing.
                m.events.push(event(format!("trial.tir.{e}.edges"), inside, None, vec![]));
                column_for(&mut columns, &format!("trial.tir.{e}"), Expr::Sym(q))
            }
            EndpointKind::FirstCrossing { threshold, up } => {
                let when =
                    m.add(&format!("trial.cross.{e}"), Role::Internal, SymbolKind::Parameter, Expr::Num(f64::NAN));
                let done = m.add(&format!("trial.crossed.{e}"), Role::Internal, SymbolKind::Parameter, Expr::Num(0.0));
                let op = if up { BinOp::Ge } else { BinOp::Le };
                let first = Expr::bin(BinOp::Eq, Expr::Sym(done), Expr::Num(0.0));
                m.events.push(event(
                    format!("trial.cross.{e}.event"),
                    Expr::bin(op, scaled.clone(), Expr::Num(threshold)),
                    None,
                    vec![
                        EventAssignment {
                            target: when,
                            value: Expr::Piecewise(vec![(Expr::Time, first)], Box::new(Expr::Sym(when))),
                        },
                        EventAssignment { target: done, value: Expr::Num(1.0) },
                    ],
                ));
                column_for(&mut columns, &format!("trial.cross.{e}"), Expr::Sym(when))
            }
        };
        reads.push(EndpointRead { col, scale: ep.scale, kind: ep.kind });
    }
    sort_dedup(&mut times);
    let mut trajectory_columns: Vec<Column> = Vec::new();
    if spec.output.variables.is_empty() {
        for ep in &spec.endpoints {
            let expr = r.quantity(&ep.variable, ep.expression, &ep.at)?;
            column_for(&mut trajectory_columns, &ep.variable, expr);
        }
    } else {
        let at = spec.output.variables_at.clone().unwrap_or_else(|| spec.endpoints[0].at.clone());
        for v in &spec.output.variables {
            // An id of the model, else an expression over its ids.
            let expression = r.model.lookup(v).is_none() && !is_identifier(v);
            let expr = r.quantity(v, expression, &at)?;
            column_for(&mut trajectory_columns, v, expr);
        }
    }
    let plot_col = spec.endpoints.first().and_then(|e| columns.iter().position(|c| c.name == e.variable)).unwrap_or(0);
    let build_err = |message: String| TrialError::Build { model: spec.model.clone(), arm: name.to_string(), message };
    let sim = Simulator::new(m, &vht_codegen::Options::default()).map_err(|e| build_err(e.to_string()))?;
    let outputs = sim.outputs(&columns).map_err(|e| build_err(e.to_string()))?;
    Ok(ArmPlan {
        name: name.to_string(),
        sim: Arc::new(sim),
        outputs: Arc::new(outputs),
        times,
        initial_changes,
        reads,
        plot_col,
        trajectory_columns,
    })
}
