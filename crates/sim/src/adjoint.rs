//! Adjoint sensitivities: the gradient of a sum of terms read at output
//! times, by one backward integration instead of one forward tangent per
//! parameter.
//!
//! For `dx/dt = f(x, p)` and an objective `J = sum_k J_k(x(t_k), p)`, the
//! adjoint `λ` solves `dλ/dt = -J_x^T λ` backwards from `λ = 0` after the
//! last output time, jumping by `∂J_k/∂x` at each `t_k`; alongside,
//! `dμ/dt = -f_p^T λ` (from `μ = 0`, jumping by `∂J_k/∂p`) collects the
//! parameters' share. Then `dJ/dv = λ(t0)^T dx0/dv + μ(t0)^T dp/dv` for any
//! quantities `v` the initial state and the parameters depend on. The cost
//! is one forward run that keeps its steps ([`crate::simulate_dense`]) and one
//! backward run of `n + m` unknowns (`n` states, `m` parameters), against
//! `n (1 + m)` for forward sensitivities.
//!
//! The backward run integrates `λ` in reversed time `s = -t` with the same
//! BDF method, the forward solution read from the dense record (cubic
//! Hermite, as CVODES does); `J` and `f_p` are compiled once as one sparse
//! Jacobian, the LU analysis of `J^T` made once. `μ` is a quadrature, not
//! part of the Newton systems: Gauss-Legendre (3 points) over each backward
//! step on the integrator's dense output. The run restarts at output times
//! (jumps) and where the forward run restarted (switches of the vector field).
//!
//! Events at fixed times (doses: the trigger reads time and parameters that
//! are not differentiated, no delay, assignments to states) are crossed
//! backwards with the Jacobian of their assignments at the state before
//! them, recorded by the forward run: `λ- = (∂h/∂x)^T λ+`, `μ += (∂h/∂p)^T λ+`.
//! Not covered (an error says so): events whose time moves with the state or
//! the parameters, with delays, or that assign parameters; algebraic rules
//! and `delay`. Switch times must not depend on the parameters (as for the
//! forward sensitivities, the caller checks).

use std::cell::RefCell;

use vht_codegen::{compile_jacobian, CompiledJacobian, NoDelays};
use vht_ir::Sym;
use vht_solver::{JacobianStructure, Options, StepOutcome, System};

use crate::{Dense, SimError, Simulator};

/// What an adjoint system cannot be built for.
#[derive(Debug, thiserror::Error)]
pub enum AdjointError {
    #[error("the model has {0}; adjoint sensitivities do not cover it")]
    Unsupported(&'static str),
    #[error("could not compile the adjoint system: {0}")]
    Codegen(#[from] vht_codegen::CodegenError),
    #[error("adjoint system: {0}")]
    Solver(#[from] vht_solver::SolveError),
}

/// The compiled adjoint of a simulator's ODE with respect to chosen
/// parameters. Built once, shared by every run (`Send + Sync`).
pub struct Adjoint {
    n: usize,
    m: usize,
    /// `∂f/∂(y, params)`: columns `0..n` are the states, `n..n+m` the parameters.
    jac: CompiledJacobian,
    /// The entries of `jac` in state columns: the backward system's
    /// Jacobian is their transpose (`structure`, in this order).
    state_entries: Vec<usize>,
    structure: JacobianStructure,
    /// Per event of the model: the Jacobian of its assignments.
    events: Vec<EventJacobian>,
}

/// An event's assignments `x_i := h_i(x, p)` (states only) differentiated by
/// `(y, params)`: going backwards through it, `λ_k := [k not assigned] λ_k
/// + sum_i λ_i ∂h_i/∂x_k` and `μ_a += sum_i λ_i ∂h_i/∂p_a`.
struct EventJacobian {
    /// State index of each assignment (rows of `jac`).
    targets: Vec<usize>,
    jac: CompiledJacobian,
}

impl EventJacobian {
    /// Only events whose time cannot move with `params` or the state (the
    /// trigger reads time and other parameters alone, no delay) and that
    /// assign states: then the event time's own sensitivity is zero.
    fn new(sim: &Simulator, ev: &vht_ir::Event, wrt: &[Sym], params: &[Sym]) -> Result<EventJacobian, AdjointError> {
        let model = &sim.model;
        let layout = &sim.code.layout;
        if ev.delay.is_some() {
            return Err(AdjointError::Unsupported("events with delays"));
        }
        let mut moving = false;
        visit_inputs(model, &ev.trigger, &mut |s| {
            moving |= params.contains(&s) || layout.y.contains(&s);
        });
        if moving {
            return Err(AdjointError::Unsupported(
                "events whose time depends on the state or on the parameters being differentiated",
            ));
        }
        let mut targets = Vec::new();
        let mut values = Vec::new();
        for a in &ev.assignments {
            match layout.y[..sim.n_ode].iter().position(|&y| y == a.target) {
                Some(i) => {
                    targets.push(i);
                    values.push(a.value.clone());
                }
                None => return Err(AdjointError::Unsupported("events that assign parameters")),
            }
        }
        let jac = compile_jacobian(model, layout, &values, wrt, &vht_codegen::Options::default())?;
        Ok(EventJacobian { targets, jac })
    }

    /// `λ`, `μ` from after the event (at the state `y` before it) to before it.
    fn back(&self, n: usize, t: f64, y: &[f64], p: &[f64], lambda: &mut [f64], mu: &mut [f64]) {
        let mut e = vec![0.0; self.jac.pattern.len()];
        self.jac.values.eval(t, y, p, &mut e, &NoDelays);
        let after: Vec<f64> = self.targets.iter().map(|&i| lambda[i]).collect();
        for &i in &self.targets {
            lambda[i] = 0.0;
        }
        for (k, &(r, c)) in self.jac.pattern.iter().enumerate() {
            if c < n {
                lambda[c] += after[r] * e[k];
            } else {
                mu[c - n] += after[r] * e[k];
            }
        }
    }
}

/// The symbols stored in y or p that `e` reads, directly or through rules.
fn visit_inputs(model: &vht_ir::Model, e: &vht_ir::Expr, f: &mut dyn FnMut(Sym)) {
    for s in e.instant_symbols() {
        match &model.symbol(s).kind {
            vht_ir::SymbolKind::Assigned { expr } => visit_inputs(model, expr, f),
            _ => f(s),
        }
    }
}

/// The adjoint at the start of the run: `λ(t0)` (one per ODE state, in the
/// layout's order) and `μ(t0)` (one per parameter given to [`Adjoint::new`]).
#[derive(Clone, Debug)]
pub struct AdjointResult {
    pub lambda: Vec<f64>,
    pub mu: Vec<f64>,
    pub stats: vht_solver::Stats,
}

/// A jump of the adjoint at an output time: `λ += dlambda`, `μ += dmu`.
#[derive(Clone, Debug)]
pub struct Jump {
    pub t: f64,
    pub dlambda: Vec<f64>,
    pub dmu: Vec<f64>,
}

impl Adjoint {
    /// The adjoint system of `sim` for the parameters `params` (model
    /// parameters, stored in the layout's p).
    pub fn new(sim: &Simulator, params: &[Sym]) -> Result<Adjoint, AdjointError> {
        let model = &sim.model;
        if sim.n_alg > 0 {
            return Err(AdjointError::Unsupported("algebraic rules"));
        }
        if sim.has_delays {
            return Err(AdjointError::Unsupported("delays"));
        }
        let layout = &sim.code.layout;
        let n = sim.n_ode;
        let mut rates = Vec::with_capacity(n);
        for &s in &layout.y[..n] {
            if let vht_ir::SymbolKind::State { rate } = &model.symbol(s).kind {
                rates.push(rate.clone());
            }
        }
        let mut wrt: Vec<Sym> = layout.y[..n].to_vec();
        wrt.extend_from_slice(params);
        let jac = compile_jacobian(model, layout, &rates, &wrt, &vht_codegen::Options::default())?;
        let state_entries: Vec<usize> = (0..jac.pattern.len()).filter(|&k| jac.pattern[k].1 < n).collect();
        let entries: Vec<(usize, usize)> =
            state_entries.iter().map(|&k| (jac.pattern[k].1, jac.pattern[k].0)).collect();
        let structure = JacobianStructure::new(n, &entries)?;
        let events =
            model.events.iter().map(|ev| EventJacobian::new(sim, ev, &wrt, params)).collect::<Result<Vec<_>, _>>()?;
        Ok(Adjoint { n, m: params.len(), jac, state_entries, structure, events })
    }

    /// Integrates the adjoint backwards over the run `dense`, from its last
    /// jump to its start, adding each jump at its time (jumps at the start
    /// are added last). `jumps` must be sorted by time, within the run.
    pub fn solve(&self, dense: &Dense, jumps: &[Jump], rtol: f64, max_steps: usize) -> Result<AdjointResult, SimError> {
        let (n, m) = (self.n, self.m);
        let t0 = dense.start();
        let Some(last) = jumps.last() else {
            return Ok(AdjointResult { lambda: vec![0.0; n], mu: vec![0.0; m], stats: Default::default() });
        };
        if jumps.windows(2).any(|p| p[1].t < p[0].t) || jumps[0].t < t0 {
            return Err(SimError::Settings { reason: "adjoint jumps must be sorted and within the run".into() });
        }
        // Stops, latest first: jump times and the forward run's restarts.
        let firings = dense.firings();
        let mut stops: Vec<f64> = jumps.iter().map(|j| j.t).collect();
        stops.extend(firings.iter().map(|f| f.t).filter(|&t| t <= last.t));
        stops.extend(dense.restarts().into_iter().filter(|&t| t > t0 && t < last.t));
        stops.push(t0);
        stops.sort_by(|a, b| b.total_cmp(a));
        stops.dedup();
        // The absolute tolerance follows the size of the jumps: the adjoint
        // is linear, so its scale is theirs. Below 1e-12 of it, components
        // far smaller than the largest are asked for more than the LU solve's
        // round-off gives them (cond(I - hJ) * eps * scale), Newton
        // "fails" and the steps collapse: Bachmann_MSB2011 took 10^5 steps
        // per condition at 1e-6 rtol × scale (against 10^3) without a
        // better gradient.
        let scale = jumps
            .iter()
            .flat_map(|j| j.dlambda.iter().chain(&j.dmu))
            .fold(0.0f64, |a, &b| a.max(b.abs()))
            .max(f64::MIN_POSITIVE);
        // Between stops the system is linear and smooth: CVODE's fast step growth is safe.
        let options =
            Options { rtol, atol: (1e-3 * rtol).max(1e-12) * scale, max_steps, fast_start: true, ..Options::default() };
        let backward = Backward {
            adj: self,
            dense,
            p: dense.p(),
            // The dense record's state and parameters at one time.
            y: RefCell::new(vec![0.0; n + dense.p().len()]),
            cache: RefCell::new((f64::NAN, vec![0.0; self.jac.pattern.len()])),
        };
        let mut mu = vec![0.0; m];
        let mut next_jump = jumps.len();
        // Firings after the last jump cannot change the objective.
        let mut next_firing = firings.partition_point(|f| f.t <= last.t);
        let p = dense.p();
        // At a time: the measurements there (they see the state after any
        // event), then the events fired there, last first.
        let mut apply = |t: f64, lambda: &mut [f64], mu: &mut [f64], next_jump: &mut usize| {
            while *next_jump > 0 && jumps[*next_jump - 1].t >= t {
                let j = &jumps[*next_jump - 1];
                lambda.iter_mut().zip(&j.dlambda).for_each(|(a, b)| *a += b);
                mu.iter_mut().zip(&j.dmu).for_each(|(a, b)| *a += b);
                *next_jump -= 1;
            }
            while next_firing > 0 && firings[next_firing - 1].t >= t {
                let f = &firings[next_firing - 1];
                self.events[f.event].back(n, f.t, &f.y, p, lambda, mu);
                next_firing -= 1;
            }
        };
        let mut lambda = vec![0.0; n];
        apply(stops[0], &mut lambda, &mut mu, &mut next_jump);
        if stops.len() == 1 || n == 0 {
            apply(f64::NEG_INFINITY, &mut lambda, &mut mu, &mut next_jump);
            return Ok(AdjointResult { lambda, mu, stats: Default::default() });
        }
        let start = lambda.clone();
        let stats = vht_solver::integrate(&backward, -stops[0], &start, &options, |it| -> Result<_, SimError> {
            let mut at = vec![0.0; n];
            for &stop in &stops[1..] {
                let s_stop = -stop;
                if !it.set_stop_time(s_stop)? {
                    loop {
                        let s_prev = it.t();
                        let outcome = it.step()?;
                        // μ by Gauss-Legendre quadrature over the step, on
                        // the integrator's dense output.
                        let (mid, half) = (0.5 * (s_prev + it.t()), 0.5 * (it.t() - s_prev));
                        for (node, weight) in GAUSS3 {
                            let s = mid + half * node;
                            it.interpolate(s, &mut at)?;
                            backward.with_entries(s, |e| {
                                for (k, &(r, c)) in self.jac.pattern.iter().enumerate() {
                                    if c >= n {
                                        mu[c - n] += half * weight * e[k] * at[r];
                                    }
                                }
                            });
                        }
                        if matches!(outcome, StepOutcome::Stop { .. }) {
                            break;
                        }
                    }
                }
                lambda.copy_from_slice(it.y());
                apply(stop, &mut lambda, &mut mu, &mut next_jump);
                if stop > t0 {
                    it.restart(s_stop, &lambda);
                }
            }
            Ok(it.stats())
        })??;
        Ok(AdjointResult { lambda, mu, stats })
    }
}

/// Gauss-Legendre nodes on [-1, 1] and weights, 3 points (exact to degree 5).
const GAUSS3: [(f64, f64); 3] =
    [(-0.774_596_669_241_483_4, 5.0 / 9.0), (0.0, 8.0 / 9.0), (0.774_596_669_241_483_4, 5.0 / 9.0)];

/// The backward system in `s = -t`: `dλ/ds = J^T λ`, `dμ/ds = f_p^T λ`.
struct Backward<'a> {
    adj: &'a Adjoint,
    dense: &'a Dense,
    p: &'a [f64],
    y: RefCell<Vec<f64>>,
    /// The Jacobian entries at the last time asked for (Newton iterations
    /// evaluate many vectors at one time).
    cache: RefCell<(f64, Vec<f64>)>,
}

impl Backward<'_> {
    fn with_entries<R>(&self, s: f64, body: impl FnOnce(&[f64]) -> R) -> R {
        let t = -s;
        let mut cache = self.cache.borrow_mut();
        if cache.0 != t {
            let mut y = self.y.borrow_mut();
            self.dense.at(t, &mut y);
            self.adj.jac.values.eval(t, &y[..self.adj.n], self.p, &mut cache.1, &NoDelays);
            cache.0 = t;
        }
        body(&cache.1)
    }
}

impl System for Backward<'_> {
    fn len(&self) -> usize {
        self.adj.n
    }
    fn rhs(&self, s: f64, w: &[f64], dw: &mut [f64]) {
        self.jac_mul(s, w, w, dw);
    }
    fn jac_mul(&self, s: f64, _w: &[f64], v: &[f64], out: &mut [f64]) {
        // Linear: the Jacobian's action is the right-hand side's.
        out.iter_mut().for_each(|o| *o = 0.0);
        let n = self.adj.n;
        self.with_entries(s, |e| {
            for (k, &(r, c)) in self.adj.jac.pattern.iter().enumerate() {
                if c < n {
                    out[c] += e[k] * v[r];
                }
            }
        });
    }
    fn jacobian_structure(&self) -> Option<&JacobianStructure> {
        Some(&self.adj.structure)
    }
    fn jacobian(&self, s: f64, _w: &[f64], values: &mut [f64]) {
        self.with_entries(s, |e| {
            for (v, &k) in values.iter_mut().zip(&self.adj.state_entries) {
                *v = e[k];
            }
        });
    }
}
