//! The negative log-likelihood of a PEtab problem at given parameters.

use std::collections::HashMap;

use vht_ir::eval::{eval, Env};
use vht_ir::{BinOp, Expr, Model, Role, Sym, SymbolKind};
use vht_sim::{Column, Outputs, Simulator, TimeCourse, Trajectory};

use crate::math;
use crate::problem::{NoiseDistribution, Prior, PriorKind, Problem, Transformation, Value};
use crate::{At, FitError};

/// The objective, its gradient and its Gauss-Newton Hessian (rows), see
/// [`Objective::evaluate_with_gradient`].
pub type WithGradient = (f64, Vec<f64>, Vec<Vec<f64>>);

/// How to simulate. Plain data.
#[derive(Clone, Debug)]
pub struct Settings {
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
    pub steady_state: SteadyState,
    /// How [`Objective::evaluate_with_gradient`] computes the gradient.
    pub gradient: Gradient,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rtol: 1e-8,
            atol: 1e-12,
            max_steps: 500_000,
            steady_state: SteadyState::default(),
            gradient: Gradient::Forward,
        }
    }
}

/// How gradients are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gradient {
    /// Forward sensitivities: the gradient and the Gauss-Newton Hessian
    /// (one tangent per estimated parameter and state).
    #[default]
    Forward,
    /// Adjoint sensitivities: the gradient only (the Hessian is empty), by
    /// one backward run per condition whatever the number of parameters
    /// (see the `adjoint` module). For gradient-only optimisers (L-BFGS);
    /// experiments with steady-state measurements still use forward
    /// sensitivities; models with events whose time moves with the parameters
    /// are refused (fixed-time doses are covered).
    Adjoint,
}

/// When a simulation counts as having reached its steady state: the
/// weighted root-mean-square of the state derivative,
/// `sqrt(mean((dx_i/dt / (atol + rtol |x_i|))^2))`, is below 1 (AMICI's
/// criterion). It is checked on a geometric grid of times after the last
/// finite output, up to `max_time` later; the point found (or the last one)
/// is then polished by Newton's method, accepted where the polished
/// derivative meets the same criterion (see `steady.rs`).
#[derive(Clone, Debug)]
pub struct SteadyState {
    pub rtol: f64,
    pub atol: f64,
    pub max_time: f64,
}

impl Default for SteadyState {
    fn default() -> Self {
        SteadyState { rtol: 1e-8, atol: 1e-10, max_time: 1e9 }
    }
}

/// The objective at one parameter vector.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Negative log-likelihood of the measurements.
    pub likelihood: f64,
    /// Negative log-density of the objective priors (0 without priors).
    pub prior: f64,
    pub experiments: Vec<ExperimentValue>,
    /// One per row of the measurement table, in table order.
    pub measurements: Vec<MeasurementValue>,
}

/// The model's side of one measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeasurementValue {
    /// The observable `h` (linear scale).
    pub simulation: f64,
    /// The noise parameter (standard deviation, or Laplace scale) on the transformed scale.
    pub sigma: f64,
    pub nllh: f64,
}

impl Evaluation {
    /// What an optimiser minimises: likelihood and prior terms.
    pub fn total(&self) -> f64 {
        self.likelihood + self.prior
    }
}

/// The contribution of one (pre-equilibration, simulation condition) pair.
#[derive(Clone, Debug)]
pub struct ExperimentValue {
    pub preequilibration: Option<String>,
    pub simulation: String,
    pub measurements: usize,
    pub nllh: f64,
}

/// A problem compiled for evaluation: the model is compiled once and shared
/// by every condition; formulas are parsed once.
pub struct Objective {
    pub problem: Problem,
    pub settings: Settings,
    /// The SBML reader's warnings about the model.
    pub diagnostics: Vec<vht_lower::Diagnostic>,
    pub(crate) sim: Simulator,
    pub(crate) outputs: Outputs,
    pub(crate) n_model: usize,
    /// Output column of each model symbol that formulas read.
    pub(crate) col_of: HashMap<Sym, usize>,
    /// ODE states: (value column, rate column).
    pub(crate) state_cols: Vec<(Sym, usize, usize)>,
    /// Symbols past the model's, by index - n_model.
    pub(crate) extras: Vec<Extra>,
    pub(crate) observables: Vec<ObsCode>,
    /// Model parameter each parameter-table row sets, if any.
    pub(crate) param_targets: Vec<Option<Sym>>,
    /// Per condition: what it sets and to what.
    pub(crate) condition_targets: Vec<Vec<(Target, Val)>>,
    pub(crate) experiments: Vec<Experiment>,
    /// The output columns of `outputs` (the sensitivity system starts with the same ones).
    pub(crate) columns: Vec<Column>,
    /// `columns` plus a snapshot of the state, for runs that end at a steady state.
    pub(crate) steady: crate::steady::SteadyOutputs,
    /// The forward-sensitivity system, compiled on first use (see [`crate::sens`]).
    pub(crate) sens: std::sync::OnceLock<crate::sens::Sensitivities>,
    /// The adjoint system, compiled on first use (see [`crate::adjoint`]),
    /// or why the model has none.
    pub(crate) adjoint: std::sync::OnceLock<Result<crate::adjoint::Adjoints, String>>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Extra {
    /// A parameter-table row that is not a model symbol.
    Parameter(usize),
    /// `observableParameter{n}_{id}` or `noiseParameter{n}_{id}`: filled per measurement.
    Placeholder,
}

pub(crate) struct ObsCode {
    pub(crate) h: Expr,
    pub(crate) sigma: Expr,
    /// Extra index of observableParameter{n}, n = 1.. (None where unused).
    pub(crate) obs_slots: Vec<Option<usize>>,
    pub(crate) noise_slots: Vec<Option<usize>>,
    pub(crate) transformation: Transformation,
    pub(crate) noise: NoiseDistribution,
}

/// A resolved number-or-parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val {
    Number(f64),
    Parameter(usize),
}

impl Val {
    pub(crate) fn get(self, values: &[f64]) -> f64 {
        match self {
            Val::Number(x) => x,
            Val::Parameter(i) => values[i],
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// A symbol whose initial value the condition replaces (parameter,
    /// compartment, or a species whose symbol is its own state).
    Direct(Sym),
    /// A species integrated as an amount: the condition gives its initial
    /// concentration, held by the added parameter `init`.
    Amount { init: Sym, amount: Sym, size: Sym },
}

pub(crate) struct Experiment {
    pub(crate) preeq: Option<usize>,
    pub(crate) sim: usize,
    pub(crate) name: String,
    /// Finite output times, sorted, without repeats.
    pub(crate) times: Vec<f64>,
    pub(crate) steady: bool,
    pub(crate) rows: Vec<Row>,
}

/// A measurement with its references resolved.
pub(crate) struct Row {
    pub(crate) measurement: usize,
    pub(crate) observable: usize,
    /// Index into the experiment's `times`, or None for the steady state.
    pub(crate) time: Option<usize>,
    pub(crate) obs_vals: Vec<Val>,
    pub(crate) noise_vals: Vec<Val>,
}

impl Objective {
    /// Loads and compiles the model and checks the problem against it.
    pub fn new(problem: Problem, settings: Settings) -> Result<Objective, FitError> {
        let (mut model, diagnostics) = vht_lower::load(&problem.model)
            .map_err(|error| FitError::Model { file: problem.model.clone(), error: Box::new(error) })?;
        let param_index: HashMap<&str, usize> =
            problem.parameters.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
        let val = |v: &Value, at: &At| match v {
            Value::Number(x) => Ok(Val::Number(*x)),
            Value::Parameter(id) => param_index
                .get(id.as_str())
                .map(|&i| Val::Parameter(i))
                .ok_or_else(|| FitError::UnknownId { at: at.clone(), what: "parameter", id: id.clone() }),
        };

        // Parameter-table rows that are model parameters override them.
        let mut param_targets = Vec::new();
        for p in &problem.parameters {
            let target = match model.lookup(&p.id) {
                Some(s) if matches!(model.symbol(s).kind, SymbolKind::Parameter) => Some(s),
                Some(_) => {
                    return Err(FitError::Unsupported {
                        at: At { column: "parameterId".into(), ..p.at.clone() },
                        what: format!("'{}' is not a constant of the model (a rule or reactions set it)", p.id),
                    })
                }
                None => None,
            };
            param_targets.push(target);
        }

        // Condition columns: parameters, compartments or species.
        let mut amount_inits: HashMap<Sym, Target> = HashMap::new();
        let mut condition_targets = Vec::new();
        for c in &problem.conditions {
            let mut targets = Vec::new();
            for (id, v) in &c.values {
                let at = At { column: id.clone(), ..c.at.clone() };
                let Some(s) = model.lookup(id) else {
                    return Err(FitError::UnknownId {
                        at,
                        what: "model entity (condition table column)",
                        id: id.clone(),
                    });
                };
                let target = match amount_inits.get(&s) {
                    Some(t) => *t,
                    None => {
                        let t = condition_target(&mut model, s, &at)?;
                        amount_inits.insert(s, t);
                        t
                    }
                };
                targets.push((target, val(v, &at)?));
            }
            condition_targets.push(targets);
        }

        // Observable and noise formulas over the model's symbols plus extras.
        let n_model = model.symbols.len();
        let mut extras: Vec<Extra> = Vec::new();
        let mut extra_of: HashMap<String, usize> = HashMap::new();
        let mut referenced: Vec<Sym> = Vec::new();
        let mut observables = Vec::new();
        for o in &problem.observables {
            let mut obs_slots: Vec<Option<usize>> = Vec::new();
            let mut noise_slots: Vec<Option<usize>> = Vec::new();
            let mut parse = |formula: &str, column: &str| -> Result<Expr, FitError> {
                let mut resolve = |name: &str| -> Option<Expr> {
                    for (prefix, slots) in
                        [("observableParameter", &mut obs_slots), ("noiseParameter", &mut noise_slots)]
                    {
                        if let Some(n) = placeholder(name, prefix, &o.id) {
                            while slots.len() < n {
                                slots.push(None);
                            }
                            let k = *extra_of.entry(name.to_string()).or_insert_with(|| {
                                extras.push(Extra::Placeholder);
                                extras.len() - 1
                            });
                            slots[n - 1] = Some(k);
                            return Some(Expr::Sym(Sym((n_model + k) as u32)));
                        }
                    }
                    if name == "time" {
                        return Some(Expr::Time);
                    }
                    if let Some(s) = model.lookup(name) {
                        if !referenced.contains(&s) {
                            referenced.push(s);
                        }
                        return Some(Expr::Sym(s));
                    }
                    let i = *param_index.get(name)?;
                    let k = *extra_of.entry(name.to_string()).or_insert_with(|| {
                        extras.push(Extra::Parameter(i));
                        extras.len() - 1
                    });
                    Some(Expr::Sym(Sym((n_model + k) as u32)))
                };
                math::parse(formula, &mut resolve).map_err(|e| FitError::Formula {
                    at: At { column: column.into(), ..o.at.clone() },
                    formula: formula.to_string(),
                    offset: e.offset,
                    problem: e.problem,
                })
            };
            let h = parse(&o.formula, "observableFormula")?;
            let sigma = parse(&o.noise_formula, "noiseFormula")?;
            observables.push(ObsCode {
                h,
                sigma,
                obs_slots,
                noise_slots,
                transformation: o.transformation,
                noise: o.noise,
            });
        }

        // Output columns: what formulas read, compartment sizes of reset
        // species, then every ODE state and its rate (for steady states).
        for t in amount_inits.values() {
            if let Target::Amount { size, .. } = t {
                if !referenced.contains(size) {
                    referenced.push(*size);
                }
            }
        }
        let mut columns: Vec<Column> =
            referenced.iter().map(|&s| Column { name: model.name(s).to_string(), expr: Expr::Sym(s) }).collect();
        let col_of: HashMap<Sym, usize> = referenced.iter().enumerate().map(|(i, &s)| (s, i)).collect();
        let states = model.states();
        let mut state_cols = Vec::new();
        for &s in &states {
            let SymbolKind::State { rate } = &model.symbol(s).kind else { continue };
            let (vc, rc) = (columns.len(), columns.len() + 1);
            columns.push(Column { name: model.name(s).to_string(), expr: Expr::Sym(s) });
            columns.push(Column { name: format!("d/dt {}", model.name(s)), expr: rate.clone() });
            state_cols.push((s, vc, rc));
        }

        let experiments = group_experiments(&problem, &observables)?;

        let sim = Simulator::new(model, &vht_codegen::Options::default())
            .map_err(|error| FitError::Build { file: problem.model.clone(), error })?;
        let outputs =
            sim.outputs(&columns).map_err(|error| FitError::Outputs { file: problem.model.clone(), error })?;
        let steady = crate::steady::SteadyOutputs::new(&sim, &columns, &problem.model)?;
        Ok(Objective {
            problem,
            settings,
            diagnostics,
            sim,
            outputs,
            n_model,
            col_of,
            state_cols,
            extras,
            observables,
            param_targets,
            condition_targets,
            experiments,
            columns,
            steady,
            sens: std::sync::OnceLock::new(),
            adjoint: std::sync::OnceLock::new(),
        })
    }

    /// The rows of the parameter table that are estimated, in table order.
    ///
    /// This order defines the *scaled estimated parameter vector* that the
    /// optimisers, [`Self::evaluate_with_gradient`] and everything built on
    /// them use: entry `k` is row `estimated()[k]`, on that row's
    /// `parameterScale` (`log10` rows hold `log10(value)`, `log` rows `ln(value)`,
    /// `lin` rows the value). Fixed rows keep their nominal values.
    pub fn estimated(&self) -> Vec<usize> {
        (0..self.problem.parameters.len()).filter(|&i| self.problem.parameters[i].estimate).collect()
    }

    /// Bounds of the scaled estimated parameters: `(lower, upper)`.
    pub fn scaled_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        let ps = &self.problem.parameters;
        let est = self.estimated();
        (
            est.iter().map(|&i| ps[i].scale.apply(ps[i].lower)).collect(),
            est.iter().map(|&i| ps[i].scale.apply(ps[i].upper)).collect(),
        )
    }

    /// The nominal values of the estimated parameters, scaled.
    pub fn scaled_nominal(&self) -> Vec<f64> {
        let ps = &self.problem.parameters;
        self.estimated().iter().map(|&i| ps[i].scale.apply(ps[i].nominal)).collect()
    }

    /// Every parameter-table row's linear value for scaled estimated
    /// parameters `x` (fixed rows at their nominal values).
    pub fn values_from_scaled(&self, x: &[f64]) -> Result<Vec<f64>, FitError> {
        let est = self.estimated();
        if x.len() != est.len() {
            return Err(FitError::ScaledCount { expected: est.len(), found: x.len() });
        }
        let mut values = self.problem.nominal();
        for (&i, &xi) in est.iter().zip(x) {
            values[i] = self.problem.parameters[i].scale.unapply(xi);
        }
        Ok(values)
    }

    /// The objective (likelihood plus priors) at scaled estimated parameters.
    pub fn evaluate_scaled(&self, x: &[f64]) -> Result<f64, FitError> {
        Ok(self.evaluate(&self.values_from_scaled(x)?)?.total())
    }

    /// The objective, its exact gradient (forward sensitivities, or adjoint
    /// ones if [`Settings::gradient`] says so) and the
    /// Gauss-Newton / Fisher-information approximation of its Hessian
    /// (empty with adjoint gradients), all
    /// with respect to the scaled estimated parameters `x` (see
    /// [`Self::estimated`]). Conditions are simulated in parallel (rayon).
    /// The sensitivity system is compiled on the first call.
    ///
    /// The Hessian is `sum_m J_m^T W_m J_m` over measurements, with `J_m`
    /// the derivatives of the (transformed) simulation and of sigma, `W_m`
    /// the Fisher information of the noise model (normal: `1/sigma^2` and
    /// `2/sigma^2`; Laplace: `1/b^2` and `1/b^2`), plus the curvature of
    /// normal priors: symmetric positive semi-definite by construction.
    pub fn evaluate_with_gradient(&self, x: &[f64]) -> Result<WithGradient, FitError> {
        crate::sens::evaluate(self, x)
    }

    /// The forward-sensitivity system, built on first use.
    pub(crate) fn sensitivities(&self) -> Result<&crate::sens::Sensitivities, FitError> {
        if let Some(s) = self.sens.get() {
            return Ok(s);
        }
        let s = crate::sens::build(self)?;
        // Another thread may have built it meanwhile; either copy is the same.
        let _ = self.sens.set(s);
        Ok(self.sens.get().expect("set just above"))
    }

    /// The adjoint system, built on first use.
    pub(crate) fn adjoints(&self, sens: &crate::sens::Sensitivities) -> Result<&crate::adjoint::Adjoints, FitError> {
        let built = self.adjoint.get_or_init(|| {
            crate::adjoint::build(self, sens).map_err(|e| match e {
                FitError::Sensitivities { what, .. } => what,
                e => e.to_string(),
            })
        });
        built.as_ref().map_err(|what| FitError::Adjoint { file: self.problem.model.clone(), what: what.clone() })
    }

    /// Whether adjoint gradients can be computed for this problem (the error
    /// says why not). Builds both sensitivity systems.
    pub fn adjoint_supported(&self) -> Result<(), FitError> {
        self.adjoints(self.sensitivities()?).map(|_| ())
    }

    /// The compiled model.
    pub fn model(&self) -> &Model {
        &self.sim.model
    }

    /// The objective at `values`: one linear-scale value per row of the
    /// parameter table, in table order (fixed parameters included).
    pub fn evaluate(&self, values: &[f64]) -> Result<Evaluation, FitError> {
        if values.len() != self.problem.parameters.len() {
            return Err(FitError::ParameterCount { expected: self.problem.parameters.len(), found: values.len() });
        }
        use rayon::prelude::*;
        let mut experiments = Vec::new();
        let mut likelihood = 0.0;
        let nan = MeasurementValue { simulation: f64::NAN, sigma: f64::NAN, nllh: f64::NAN };
        let mut measurements = vec![nan; self.problem.measurements.len()];
        // Pre-equilibration condition -> the output row at its steady state;
        // each is simulated once, then the experiments run in parallel.
        let mut pres: Vec<usize> = self.experiments.iter().filter_map(|e| e.preeq).collect();
        pres.sort();
        pres.dedup();
        let preeq_cache: Vec<(usize, Vec<f64>)> = pres
            .par_iter()
            .map(|&p| {
                let mut cache = Vec::new();
                self.preequilibrated(p, values, &mut cache)?;
                Ok(cache.swap_remove(0))
            })
            .collect::<Result<_, FitError>>()?;
        let results: Vec<(f64, Vec<MeasurementValue>)> = self
            .experiments
            .par_iter()
            .map(|e| {
                let mut cache = preeq_cache.clone();
                let mut out = vec![nan; self.problem.measurements.len()];
                let nllh = self.experiment(e, values, &mut cache, &mut out)?;
                Ok((nllh, out))
            })
            .collect::<Result<_, FitError>>()?;
        for (e, (nllh, out)) in self.experiments.iter().zip(results) {
            for r in &e.rows {
                measurements[r.measurement] = out[r.measurement];
            }
            likelihood += nllh;
            experiments.push(ExperimentValue {
                preequilibration: e.preeq.map(|c| self.problem.conditions[c].id.clone()),
                simulation: self.problem.conditions[e.sim].id.clone(),
                measurements: e.rows.len(),
                nllh,
            });
        }
        let prior = self
            .problem
            .parameters
            .iter()
            .zip(values)
            .filter(|(p, _)| p.estimate)
            .filter_map(|(p, &x)| p.prior.map(|prior| neg_log_prior(prior, p.scale.apply(x), x)))
            // A fold from +0: an empty f64 sum is -0, which prints as "-0".
            .fold(0.0, |a, b| a + b);
        Ok(Evaluation { likelihood, prior, experiments, measurements })
    }

    /// Overrides of the parameter table's model parameters.
    pub(crate) fn base_overrides(&self, values: &[f64]) -> Vec<(Sym, f64)> {
        self.param_targets.iter().zip(values).filter_map(|(t, &v)| t.map(|s| (s, v))).collect()
    }

    fn experiment(
        &self,
        e: &Experiment,
        values: &[f64],
        preeq_cache: &mut Vec<(usize, Vec<f64>)>,
        out: &mut [MeasurementValue],
    ) -> Result<f64, FitError> {
        let overrides = self.experiment_overrides(e, values, preeq_cache)?;
        let outputs = if e.steady { &self.steady.outputs } else { &self.outputs };
        let traj = self.run_on(&self.sim, outputs, &e.times, e.steady, &overrides, &e.name)?;
        let ss = if e.steady { Some(self.steady_point(&traj, e.times.len(), &e.name)?) } else { None };
        self.experiment_terms(e, values, &traj, ss.as_ref().map(|(t, r)| (*t, r.as_slice())), out)
    }

    /// The parameter overrides of one experiment's simulation (running its
    /// pre-equilibration first, once per pre-equilibration condition).
    pub(crate) fn experiment_overrides(
        &self,
        e: &Experiment,
        values: &[f64],
        preeq_cache: &mut Vec<(usize, Vec<f64>)>,
    ) -> Result<Vec<(Sym, f64)>, FitError> {
        let mut overrides: Vec<(Sym, f64)> = Vec::new();
        // The first override of a symbol wins, so the most specific come first.
        if let Some(pre) = e.preeq {
            let r = self.preequilibrated(pre, values, preeq_cache)?;
            // Species the main condition sets are reset; the rest start where
            // pre-equilibration ended.
            for &(t, v) in &self.condition_targets[e.sim] {
                let x = v.get(values);
                if x.is_nan() {
                    continue;
                }
                match t {
                    Target::Direct(s) => overrides.push((s, x)),
                    Target::Amount { amount, size, .. } => {
                        let size_now = self.condition_targets[e.sim]
                            .iter()
                            .find(|(t2, _)| matches!(t2, Target::Direct(s2) if *s2 == size))
                            .map(|(_, v2)| v2.get(values))
                            .filter(|v| !v.is_nan())
                            .unwrap_or(r[self.col_of[&size]]);
                        overrides.push((amount, x * size_now));
                    }
                }
            }
            overrides.extend(self.state_cols.iter().map(|&(s, vc, _)| (s, r[vc])));
        } else {
            for &(t, v) in &self.condition_targets[e.sim] {
                let x = v.get(values);
                if !x.is_nan() {
                    overrides.push(match t {
                        Target::Direct(s) => (s, x),
                        Target::Amount { init, .. } => (init, x),
                    });
                }
            }
        }
        overrides.extend(self.base_overrides(values));
        Ok(overrides)
    }

    /// The output row at the steady state of pre-equilibration condition
    /// `pre`, from `cache` or simulated (and added to it): conditions that
    /// share a pre-equilibration share its simulation.
    fn preequilibrated<'c>(
        &self,
        pre: usize,
        values: &[f64],
        cache: &'c mut Vec<(usize, Vec<f64>)>,
    ) -> Result<&'c [f64], FitError> {
        if let Some(k) = cache.iter().position(|(c, _)| *c == pre) {
            return Ok(&cache[k].1);
        }
        let name = &self.problem.conditions[pre].id;
        let mut pre_ov = Vec::new();
        for &(t, v) in &self.condition_targets[pre] {
            let x = v.get(values);
            if !x.is_nan() {
                pre_ov.push(match t {
                    Target::Direct(s) => (s, x),
                    Target::Amount { init, .. } => (init, x),
                });
            }
        }
        pre_ov.extend(self.base_overrides(values));
        let traj = self.run_on(&self.sim, &self.steady.outputs, &[], true, &pre_ov, name)?;
        let (_, row) = self.steady_point(&traj, 0, name)?;
        cache.push((pre, row));
        Ok(&cache[cache.len() - 1].1)
    }

    /// The likelihood terms of one experiment from its simulation.
    fn experiment_terms(
        &self,
        e: &Experiment,
        values: &[f64],
        traj: &Trajectory,
        ss: Option<(f64, &[f64])>,
        out: &mut [MeasurementValue],
    ) -> Result<f64, FitError> {
        let mut extra_vals: Vec<f64> = self
            .extras
            .iter()
            .map(|x| match x {
                Extra::Parameter(i) => values[*i],
                Extra::Placeholder => f64::NAN,
            })
            .collect();
        let mut total = 0.0;
        for r in &e.rows {
            let meas = &self.problem.measurements[r.measurement];
            let code = &self.observables[r.observable];
            for (slots, given) in [(&code.obs_slots, &r.obs_vals), (&code.noise_slots, &r.noise_vals)] {
                for (slot, v) in slots.iter().zip(given) {
                    if let Some(k) = slot {
                        extra_vals[*k] = v.get(values);
                    }
                }
            }
            let (row, t) = match (r.time, ss) {
                (Some(i), _) => (traj.row(i), e.times[i]),
                (None, Some((t, row))) => (row, t),
                (None, None) => (traj.row(0), traj.times[0]),
            };
            let env = RowEnv { col_of: &self.col_of, row, extras: &extra_vals, n_model: self.n_model, t };
            let h = eval(&code.h, &env);
            let sigma = eval(&code.sigma, &env);
            let nllh = nllh_term(meas.value, h, sigma, code.transformation, code.noise);
            out[r.measurement] = MeasurementValue { simulation: h, sigma, nllh };
            total += nllh;
        }
        Ok(total)
    }

    /// A time course from t = 0 with outputs at `times`, at the problem's tolerances.
    pub(crate) fn time_course(&self, times: Vec<f64>) -> TimeCourse {
        TimeCourse {
            start: 0.0,
            times: Some(times),
            rtol: self.settings.rtol,
            atol: self.settings.atol,
            max_steps: self.settings.max_steps,
            ..TimeCourse::default()
        }
    }

    /// One simulation of `sim` (the model, or the sensitivity system) from
    /// t = 0 with outputs at `times`, then (if `steady`) on a geometric grid
    /// up to `max_time` later.
    pub(crate) fn run_on(
        &self,
        sim: &Simulator,
        outputs: &Outputs,
        times: &[f64],
        steady: bool,
        overrides: &[(Sym, f64)],
        condition: &str,
    ) -> Result<Trajectory, FitError> {
        let mut all = times.to_vec();
        if steady {
            let t_last = times.last().copied().unwrap_or(0.0);
            let ss = &self.settings.steady_state;
            let mut dt = 1e-3;
            while dt <= ss.max_time * (1.0 + 1e-12) {
                for f in [1.0, 2.0, 5.0] {
                    if dt * f <= ss.max_time * (1.0 + 1e-12) {
                        all.push(t_last + dt * f);
                    }
                }
                dt *= 10.0;
            }
        }
        let tc = self.time_course(all);
        vht_sim::simulate(sim, &tc, outputs, overrides)
            .map_err(|error| FitError::Simulation { condition: condition.to_string(), error })
    }

    /// The steady state of a run with the steady-state outputs: the first row
    /// at or after `from` where the state has stopped moving (or the last row
    /// if none has), polished by Newton's method (see [`crate::steady`]); the
    /// simulated row where Newton does not succeed. Gives the time and the row.
    pub(crate) fn steady_point(
        &self,
        traj: &Trajectory,
        from: usize,
        condition: &str,
    ) -> Result<(f64, Vec<f64>), FitError> {
        let found = self.steady_row(traj, from, condition);
        let last = traj.times.len().checked_sub(1).filter(|&l| l >= from);
        if let Some(i) = found.as_ref().ok().copied().or(last) {
            let t = traj.times[i];
            let (y, p) = self.steady.split(traj.row(i));
            let n = self.sim.code.layout.n_ode;
            if let Some(st) = crate::steady::newton(&self.sim, t, &y[..n.min(y.len())], p, &self.settings.steady_state)
            {
                let mut y = y.to_vec();
                y[..n].copy_from_slice(&st.x);
                return Ok((t, self.steady.row(t, &y, p)));
            }
        }
        let i = found?;
        Ok((traj.times[i], traj.row(i).to_vec()))
    }

    /// The first row at or after `from` where the state has stopped moving.
    fn steady_row(&self, traj: &Trajectory, from: usize, condition: &str) -> Result<usize, FitError> {
        let ss = &self.settings.steady_state;
        let mut last = (f64::NAN, f64::NAN);
        for i in from..traj.times.len() {
            let r = traj.row(i);
            let n = self.state_cols.len().max(1) as f64;
            let sum: f64 =
                self.state_cols.iter().map(|&(_, vc, rc)| (r[rc] / (ss.atol + ss.rtol * r[vc].abs())).powi(2)).sum();
            let norm = (sum / n).sqrt();
            if norm < 1.0 {
                return Ok(i);
            }
            last = (traj.times[i], norm);
        }
        Err(FitError::SteadyState { condition: condition.to_string(), t: last.0, norm: last.1 })
    }
}

/// How a condition-table column acts on the model; for a species integrated
/// as an amount, adds a parameter holding its initial concentration.
fn condition_target(model: &mut Model, s: Sym, at: &At) -> Result<Target, FitError> {
    let unsupported = |what: String| FitError::Unsupported { at: at.clone(), what };
    let sym = model.symbol(s).clone();
    if let Some(view) = model.species_view(s).cloned() {
        if let (Expr::Sym(amount), SymbolKind::Assigned { expr }) = (&view.amount, &sym.kind) {
            if *amount != s {
                let Expr::Bin(BinOp::Div, num, den) = expr else {
                    return Err(unsupported(format!("species '{}' has an unexpected concentration rule", sym.name)));
                };
                let (Expr::Sym(a2), Expr::Sym(size)) = (&**num, &**den) else {
                    return Err(unsupported(format!("species '{}' has an unexpected concentration rule", sym.name)));
                };
                if a2 != amount {
                    return Err(unsupported(format!("species '{}' has an unexpected concentration rule", sym.name)));
                }
                let (amount, size) = (*amount, *size);
                // The amount's own initial value divided by the size is the
                // initial concentration, which is what "keep" keeps.
                let a_initial = model.symbol(amount).initial.clone();
                let init = model.add(
                    &format!("petab_initial_{}", sym.name),
                    Role::Internal,
                    SymbolKind::Parameter,
                    a_initial / Expr::Sym(size),
                );
                model.symbols[amount.index()].initial = Expr::Sym(init) * Expr::Sym(size);
                return Ok(Target::Amount { init, amount, size });
            }
        }
    }
    match sym.kind {
        SymbolKind::Parameter | SymbolKind::State { .. } => Ok(Target::Direct(s)),
        _ => Err(unsupported(format!("'{}' is set by a rule, so a condition cannot set it", sym.name))),
    }
}

/// `observableParameter3_obs` with prefix `observableParameter` and id `obs` gives 3.
fn placeholder(name: &str, prefix: &str, obs: &str) -> Option<usize> {
    let rest = name.strip_prefix(prefix)?;
    let (n, id) = rest.split_once('_')?;
    let n: usize = n.parse().ok()?;
    (id == obs && n >= 1).then_some(n)
}

/// Groups measurements by (pre-equilibration, simulation condition), in
/// order of first appearance, and checks override counts.
fn group_experiments(problem: &Problem, observables: &[ObsCode]) -> Result<Vec<Experiment>, FitError> {
    let cond_index: HashMap<&str, usize> =
        problem.conditions.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
    let mut experiments: Vec<Experiment> = Vec::new();
    let param_index: HashMap<&str, usize> =
        problem.parameters.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
    let mut members: Vec<Vec<Row>> = Vec::new();
    for (m, meas) in problem.measurements.iter().enumerate() {
        let Some(oi) = problem.observables.iter().position(|o| o.id == meas.observable) else {
            return Err(FitError::UnknownId {
                at: At { column: "observableId".into(), ..meas.at.clone() },
                what: "observable",
                id: meas.observable.clone(),
            });
        };
        let code = &observables[oi];
        for (col, want, given) in [
            ("observableParameters", code.obs_slots.len(), meas.observable_parameters.len()),
            ("noiseParameters", code.noise_slots.len(), meas.noise_parameters.len()),
        ] {
            if want != given {
                return Err(FitError::OverrideCount {
                    at: At { column: col.into(), ..meas.at.clone() },
                    expected: want,
                    found: given,
                });
            }
        }
        let cond = |id: &str, col: &str| {
            cond_index.get(id).copied().ok_or_else(|| FitError::UnknownId {
                at: At { column: col.into(), ..meas.at.clone() },
                what: "condition",
                id: id.to_string(),
            })
        };
        let sim = cond(&meas.simulation, "simulationConditionId")?;
        let preeq = match &meas.preequilibration {
            Some(p) => Some(cond(p, "preequilibrationConditionId")?),
            None => None,
        };
        let k = match experiments.iter().position(|e| e.sim == sim && e.preeq == preeq) {
            Some(k) => k,
            None => {
                let name = match preeq {
                    Some(p) => format!("{}->{}", problem.conditions[p].id, meas.simulation),
                    None => meas.simulation.clone(),
                };
                experiments.push(Experiment { preeq, sim, name, times: Vec::new(), steady: false, rows: Vec::new() });
                members.push(Vec::new());
                experiments.len() - 1
            }
        };
        let val = |v: &Value, col: &str| match v {
            Value::Number(x) => Ok(Val::Number(*x)),
            Value::Parameter(id) => {
                param_index.get(id.as_str()).map(|&i| Val::Parameter(i)).ok_or_else(|| FitError::UnknownId {
                    at: At { column: col.into(), ..meas.at.clone() },
                    what: "parameter",
                    id: id.clone(),
                })
            }
        };
        let obs_vals =
            meas.observable_parameters.iter().map(|v| val(v, "observableParameters")).collect::<Result<_, _>>()?;
        let noise_vals = meas.noise_parameters.iter().map(|v| val(v, "noiseParameters")).collect::<Result<_, _>>()?;
        members[k].push(Row { measurement: m, observable: oi, time: None, obs_vals, noise_vals });
    }
    for (e, mut rows) in experiments.iter_mut().zip(members) {
        let time = |r: &Row| problem.measurements[r.measurement].time;
        let mut times: Vec<f64> = rows.iter().map(time).filter(|t| t.is_finite()).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        e.steady = rows.iter().any(|r| time(r).is_infinite());
        for r in &mut rows {
            let t = time(r);
            r.time = t.is_finite().then(|| times.partition_point(|&x| x < t));
        }
        e.rows = rows;
        e.times = times;
    }
    Ok(experiments)
}

/// The negative log-likelihood of one measurement, as PEtab defines it: on
/// the transformed scale, plus the change-of-variables term for log scales.
pub fn nllh_term(y: f64, h: f64, sigma: f64, transformation: Transformation, noise: NoiseDistribution) -> f64 {
    use std::f64::consts::{LN_10, PI};
    let (yt, ht, jacobian) = match transformation {
        Transformation::Lin => (y, h, 0.0),
        Transformation::Log => (y.ln(), h.ln(), y.ln()),
        Transformation::Log10 => (y.log10(), h.log10(), (y * LN_10).ln()),
    };
    let r = yt - ht;
    match noise {
        NoiseDistribution::Normal => 0.5 * (2.0 * PI * sigma * sigma).ln() + 0.5 * (r / sigma).powi(2) + jacobian,
        NoiseDistribution::Laplace => (2.0 * sigma).ln() + r.abs() / sigma + jacobian,
    }
}

/// The negative log-density of a prior at a parameter (`scaled` on its
/// parameter scale, `linear` on the linear scale).
pub fn neg_log_prior(prior: Prior, scaled: f64, linear: f64) -> f64 {
    use std::f64::consts::PI;
    let Prior { kind, a, b } = prior;
    let normal = |x: f64| 0.5 * (2.0 * PI * b * b).ln() + 0.5 * ((x - a) / b).powi(2);
    let laplace = |x: f64| (2.0 * b).ln() + (x - a).abs() / b;
    let uniform = |x: f64| if (a..=b).contains(&x) { (b - a).ln() } else { f64::INFINITY };
    match kind {
        PriorKind::Uniform => uniform(linear),
        PriorKind::ParameterScaleUniform => uniform(scaled),
        PriorKind::Normal => normal(linear),
        PriorKind::ParameterScaleNormal => normal(scaled),
        PriorKind::Laplace => laplace(linear),
        PriorKind::ParameterScaleLaplace => laplace(scaled),
        // Densities of ln(x), so the change of variables adds ln(x).
        PriorKind::LogNormal => normal(linear.ln()) + linear.ln(),
        PriorKind::LogLaplace => laplace(linear.ln()) + linear.ln(),
    }
}

pub(crate) struct RowEnv<'a> {
    pub(crate) col_of: &'a HashMap<Sym, usize>,
    pub(crate) row: &'a [f64],
    pub(crate) extras: &'a [f64],
    pub(crate) n_model: usize,
    pub(crate) t: f64,
}

impl Env for RowEnv<'_> {
    fn value(&self, s: Sym) -> f64 {
        if s.index() < self.n_model {
            self.col_of.get(&s).map_or(f64::NAN, |&c| self.row[c])
        } else {
            self.extras.get(s.index() - self.n_model).copied().unwrap_or(f64::NAN)
        }
    }
    fn time(&self) -> f64 {
        self.t
    }
    fn delayed(&self, _: &Expr, _: f64) -> f64 {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn likelihood_terms_follow_the_petab_formulas() {
        use std::f64::consts::{LN_10, PI};
        let n = nllh_term(2.0, 1.5, 0.5, Transformation::Lin, NoiseDistribution::Normal);
        assert!((n - (0.5 * (2.0 * PI * 0.25f64).ln() + 0.5)).abs() < 1e-14);
        let l = nllh_term(2.0, 1.5, 0.5, Transformation::Lin, NoiseDistribution::Laplace);
        assert!((l - (1.0f64.ln() + 1.0)).abs() < 1e-14);
        // log10: residual of the logs, plus log(y ln 10).
        let n10 = nllh_term(100.0, 10.0, 0.5, Transformation::Log10, NoiseDistribution::Normal);
        let want = 0.5 * (2.0 * PI * 0.25f64).ln() + 0.5 * 4.0 + (100.0 * LN_10).ln();
        assert!((n10 - want).abs() < 1e-12, "{n10} vs {want}");
        let nl = nllh_term(std::f64::consts::E, 1.0, 1.0, Transformation::Log, NoiseDistribution::Laplace);
        assert!((nl - (2.0f64.ln() + 1.0 + 1.0)).abs() < 1e-14);
    }

    #[test]
    fn priors() {
        use std::f64::consts::PI;
        let p = Prior { kind: PriorKind::ParameterScaleNormal, a: 1.0, b: 3.0 };
        let v = neg_log_prior(p, 2.0, 100.0);
        assert!((v - (0.5 * (2.0 * PI * 9.0).ln() + 0.5 / 9.0)).abs() < 1e-14);
        let u = Prior { kind: PriorKind::Uniform, a: 0.0, b: 4.0 };
        assert_eq!(neg_log_prior(u, 0.0, 1.0), 4f64.ln());
        assert_eq!(neg_log_prior(u, 0.0, 5.0), f64::INFINITY);
    }

    #[test]
    fn placeholders() {
        assert_eq!(placeholder("observableParameter2_obs_a", "observableParameter", "obs_a"), Some(2));
        assert_eq!(placeholder("observableParameter2_obs_b", "observableParameter", "obs_a"), None);
        assert_eq!(placeholder("noiseParameter0_x", "noiseParameter", "x"), None);
    }
}
