//! One time course: initial values, integration, events and outputs.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use vht_codegen::{DelayHost, Function, Slot};
use vht_ir::eval::{eval, Env};
use vht_ir::{Expr, Sym, SymbolKind};
use vht_solver::{LinearSolver, Options, SolveError, Stats, StepOutcome, System};

use crate::events::{Pending, Queue};
use crate::history::History;
use crate::{newton, Simulator};

/// Settings of one time course. Plain data.
#[derive(Clone, Debug)]
pub struct TimeCourse {
    pub start: f64,
    pub end: f64,
    /// Output rows, including start and end (at least 2), evenly spaced.
    pub points: usize,
    /// Explicit output times instead (`end` and `points` are then ignored):
    /// non-decreasing, none before `start`; repeated times give repeated rows.
    pub times: Option<Vec<f64>>,
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
    /// Give up (with [`SimError::Timeout`]) after this instant.
    pub deadline: Option<Instant>,
    /// Seed for the choice among simultaneous events of equal priority.
    pub seed: u64,
    /// Dense or sparse LU for the integrator's Newton systems.
    pub linear_solver: LinearSolver,
}

impl Default for TimeCourse {
    fn default() -> Self {
        TimeCourse {
            start: 0.0,
            end: 10.0,
            points: 101,
            times: None,
            rtol: 1e-6,
            atol: 1e-12,
            max_steps: 500_000,
            deadline: None,
            seed: 0,
            linear_solver: LinearSolver::Auto,
        }
    }
}

/// Output columns compiled once for a simulator: every run of a cohort reuses them.
pub struct Outputs {
    pub names: Vec<String>,
    pub(crate) function: Function,
}

/// One output column: a name and the expression it reports.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub expr: Expr,
}

/// The result of a time course: a table with one row per output time.
#[derive(Clone, Debug)]
pub struct Trajectory {
    pub names: Vec<String>,
    pub times: Vec<f64>,
    /// Row-major: `values[i * names.len() + j]` is column `j` at `times[i]`.
    pub values: Vec<f64>,
    pub stats: Stats,
}

impl Trajectory {
    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.names.len();
        &self.values[i * n..(i + 1) * n]
    }
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let j = self.names.iter().position(|n| n == name)?;
        Some((0..self.times.len()).map(|i| self.row(i)[j]).collect())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error(transparent)]
    Solver(#[from] SolveError),
    #[error("the algebraic equations have no solution near the current values at t = {t}")]
    Algebraic { t: f64 },
    #[error("the run took longer than allowed (stopped at t = {t})")]
    Timeout { t: f64 },
    #[error("events keep firing at t = {t} (more than {limit} executions at one time)")]
    EventLoop { t: f64, limit: usize },
    #[error("bad time course: {reason}")]
    Settings { reason: String },
    #[error("could not compile the output columns: {0}")]
    Columns(String),
    #[error(
        "at t = {t} {}{}",
        match rate { Some(r) => format!("the rate of '{r}' is not a number"), None => "a state is not a number".to_string() },
        if missing.is_empty() { String::new() } else { format!(": the model gives no value for {}", missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")) }
    )]
    NoValue { t: f64, missing: Vec<String>, rate: Option<String> },
    #[error("a delay is negative ({tau}) at t = {t}")]
    NegativeDelay { t: f64, tau: f64 },
}

/// Simulates one time course. `overrides` replace parameter values (and so
/// every initial value that depends on them).
pub fn simulate(
    sim: &Simulator,
    tc: &TimeCourse,
    outputs: &Outputs,
    overrides: &[(Sym, f64)],
) -> Result<Trajectory, SimError> {
    let times = output_times(tc)?;
    let out_fn = &outputs.function;
    let columns = &outputs.names;
    let run = Run::new(sim, tc, overrides, false)?;
    run.go(tc, &times, columns, out_fn)
}

/// Simulates one time course as [`simulate`] does, and also keeps the
/// solution between the output times ([`Dense`]): the state and its rate at
/// every accepted step, for runs that must be followed backwards (adjoint
/// sensitivities).
pub fn simulate_dense(
    sim: &Simulator,
    tc: &TimeCourse,
    outputs: &Outputs,
    overrides: &[(Sym, f64)],
) -> Result<(Trajectory, Dense), SimError> {
    let times = output_times(tc)?;
    let run = Run::new(sim, tc, overrides, true)?;
    let traj = run.go(tc, &times, &outputs.names, &outputs.function)?;
    let p = run.p.borrow().clone();
    let dense = Dense { history: run.history.into_inner(), firings: run.firings.into_inner(), p, start: tc.start };
    Ok((traj, dense))
}

/// Every symbol's value at the start of a run with these overrides, in model
/// (`Sym`) order: what a run starts from before events at the start fire.
pub fn initial_values(sim: &Simulator, start: f64, overrides: &[(Sym, f64)]) -> Result<Vec<f64>, SimError> {
    let tc = TimeCourse { start, ..TimeCourse::default() };
    Ok(Run::new(sim, &tc, overrides, false)?.vals0)
}

/// One execution of an event in a dense run: when, which (index into the
/// model's events) and the state `y` just before it.
#[derive(Clone, Debug)]
pub struct Firing {
    pub t: f64,
    pub event: usize,
    pub y: Vec<f64>,
}

/// The solution of a run between its output times: cubic Hermite
/// interpolation between the integrator's accepted steps (the interpolant
/// the integrator's own error control vouches for at its step ends, and
/// CVODES' default for adjoint runs). Two samples at one time mark a restart
/// (an event or a switch of the vector field).
pub struct Dense {
    history: History,
    firings: Vec<Firing>,
    /// The parameters at the end of the run.
    p: Vec<f64>,
    start: f64,
}

impl Dense {
    /// The state `y` at `t` (within the run), followed by the parameters:
    /// `yp` holds `n_y + p().len()` values.
    pub fn at(&self, t: f64, yp: &mut [f64]) {
        self.history.at(t, (f64::NEG_INFINITY, &[]), yp);
    }

    /// The parameter values the run ended with.
    pub fn p(&self) -> &[f64] {
        &self.p
    }

    pub fn start(&self) -> f64 {
        self.start
    }

    /// The event executions, in order.
    pub fn firings(&self) -> &[Firing] {
        &self.firings
    }

    /// The times where the run restarted (the vector field may jump there).
    pub fn restarts(&self) -> Vec<f64> {
        self.history.repeated_times()
    }
}

/// The mutable state of one run. The solver sees it through [`System`]
/// (with shared references), hence the cells.
struct Run<'s> {
    sim: &'s Simulator,
    t0: f64,
    /// Parameter values (events may change them).
    p: RefCell<Vec<f64>>,
    /// The algebraic unknowns at the last solve (the next solve's guess).
    z: RefCell<Vec<f64>>,
    alg_failed: Cell<Option<f64>>,
    /// Keep every accepted step in `history` (for [`simulate_dense`]), not
    /// only for delays, and every event execution in `firings`.
    dense: bool,
    firings: RefCell<Vec<Firing>>,
    history: RefCell<History>,
    /// The latest point the model was evaluated at, `(t, y)`: a delay
    /// shorter than the current step reads between the history and here.
    now: RefCell<(f64, Vec<f64>)>,
    /// Every symbol's value at the start, before events at t0 (the past of
    /// the run for `delay`).
    vals0: Vec<f64>,
    delays: Vec<Expr>,
    scratch: RefCell<Scratch>,
    /// The full y for root and trigger evaluations.
    y_roots: RefCell<Vec<f64>>,
}

struct Scratch {
    y: Vec<f64>,
    f: Vec<f64>,
    jac: Vec<f64>,
    /// The point `(t, x)` the values in `jac` belong to: diffsol assembles a
    /// Jacobian from several Jacobian-vector products at one point, and the
    /// analytic values are computed once for all of them.
    jac_at: Option<(f64, Vec<f64>)>,
}

/// Index of the dummy state a model with no ODE states integrates (so that
/// time, and with it events, still advance).
const DUMMY: f64 = 0.0;

impl<'s> Run<'s> {
    fn new(sim: &'s Simulator, tc: &TimeCourse, overrides: &[(Sym, f64)], dense: bool) -> Result<Run<'s>, SimError> {
        let model = &sim.model;
        let n = model.symbols.len();
        let mut vals = vec![f64::NAN; n];
        // Overrides by symbol index (a cohort member overrides hundreds of
        // parameters of models with thousands of symbols: no search per symbol).
        // The first override of a symbol wins, as before.
        let mut by_sym: Vec<Option<f64>> = vec![None; n];
        for &(o, v) in overrides {
            if let Some(slot @ None) = by_sym.get_mut(o.index()) {
                *slot = Some(v);
            }
        }
        // Initial values in dependency order.
        for &s in &sim.init_order {
            let sym = model.symbol(s);
            let v = if let Some(v) = by_sym[s.index()] {
                v
            } else {
                let e = match &sym.kind {
                    SymbolKind::Assigned { expr } => expr,
                    _ => &sym.initial,
                };
                eval(e, &InitEnv { model, vals: &vals, t: tc.start, shifted: false })
            };
            vals[s.index()] = v;
        }
        let layout = &sim.code.layout;
        let p: Vec<f64> = layout.p.iter().map(|s| vals[s.index()]).collect();
        let z: Vec<f64> = layout.y[sim.n_ode..].iter().map(|s| vals[s.index()]).collect();
        let n_jac = sim.code.jac_pattern.len();
        let run = Run {
            sim,
            t0: tc.start,
            p: RefCell::new(p),
            z: RefCell::new(z),
            alg_failed: Cell::new(None),
            dense,
            firings: RefCell::new(Vec::new()),
            // Samples hold y, then the parameters (events change those).
            history: RefCell::new(History::new(sim.n_y() + sim.code.layout.p.len())),
            now: RefCell::new((f64::NEG_INFINITY, vec![0.0; sim.n_y() + sim.code.layout.p.len()])),
            vals0: vals,
            delays: vht_codegen::model_delays(model),
            y_roots: RefCell::new(vec![0.0; sim.n_y()]),
            scratch: RefCell::new(Scratch {
                y: vec![0.0; sim.n_y()],
                f: vec![0.0; sim.n_y()],
                jac: vec![0.0; n_jac],
                jac_at: None,
            }),
        };
        Ok(run)
    }

    fn n_sys(&self) -> usize {
        self.sim.n_ode.max(1)
    }

    /// A model that leaves a quantity without a value fails here, naming
    /// it, rather than later as an opaque solver failure.
    fn check_start_values(&self, t0: f64, x: &[f64]) -> Result<(), SimError> {
        let sim = self.sim;
        let layout = &sim.code.layout;
        let mut f = vec![0.0; sim.n_y()];
        let mut y = vec![0.0; sim.n_y()];
        y[..sim.n_ode].copy_from_slice(&x[..sim.n_ode]);
        y[sim.n_ode..].copy_from_slice(&self.z.borrow());
        sim.code.rhs.eval(t0, &y, &self.p.borrow(), &mut f, self);
        if f[..sim.n_ode].iter().all(|v| v.is_finite()) && x.iter().all(|v| v.is_finite()) {
            return Ok(());
        }
        // Name the inputs without a value: states first, then parameters.
        let missing: Vec<String> = layout.y[..sim.n_ode]
            .iter()
            .chain(&layout.p)
            .filter(|s| self.vals0[s.index()].is_nan())
            .map(|s| sim.model.name(*s).to_string())
            .collect();
        let rate = layout.y[..sim.n_ode]
            .iter()
            .zip(&f)
            .find(|(_, v)| !v.is_finite())
            .map(|(s, _)| sim.model.name(*s).to_string());
        // A rate can be infinite at the start and the integrator still cope
        // (e.g. a rate that divides by time); only an input without a value
        // is an error the model's author must fix.
        if missing.is_empty() {
            return Ok(());
        }
        Err(SimError::NoValue { t: t0, missing, rate })
    }

    /// The ODE part of the initial state.
    fn x0(&self) -> Vec<f64> {
        let layout = &self.sim.code.layout;
        let mut x: Vec<f64> = layout.y[..self.sim.n_ode].iter().map(|s| self.vals0[s.index()]).collect();
        if x.is_empty() {
            x.push(DUMMY);
        }
        x
    }

    /// Solves the algebraic unknowns for the ODE state `x` at `t`, starting
    /// from the last solution, and writes the full `y = [x, z]`.
    fn full_y(&self, t: f64, x: &[f64], y: &mut [f64]) -> bool {
        let n_ode = self.sim.n_ode;
        y[..n_ode].copy_from_slice(&x[..n_ode]);
        if self.sim.n_alg == 0 {
            self.set_now(t, y);
            return true;
        }
        let mut z = self.z.borrow_mut();
        y[n_ode..].copy_from_slice(&z);
        let p = self.p.borrow();
        let code = &self.sim.code;
        let n_alg = self.sim.n_alg;
        let mut f = vec![0.0; y.len()];
        let mut jv = vec![0.0; code.jac_pattern.len()];
        let mut yy = y.to_vec();
        let ok = newton::solve(&mut z, |zz, r, jac| {
            yy[n_ode..].copy_from_slice(zz);
            code.rhs.eval(t, &yy, &p, &mut f, self);
            r.copy_from_slice(&f[n_ode..]);
            if let Some(jac) = jac {
                code.jac.eval(t, &yy, &p, &mut jv, self);
                jac.iter_mut().for_each(|v| *v = 0.0);
                for &(k, r, c) in &self.sim.jac_alg {
                    jac[c * n_alg + r] = jv[k];
                }
            }
        });
        y[n_ode..].copy_from_slice(&z);
        drop(z);
        self.set_now(t, y);
        if !ok {
            self.alg_failed.set(Some(t));
        }
        ok
    }

    fn set_now(&self, t: f64, y: &[f64]) {
        if self.sim.has_delays {
            let mut now = self.now.borrow_mut();
            now.0 = t;
            now.1[..y.len()].copy_from_slice(y);
            now.1[y.len()..].copy_from_slice(&self.p.borrow());
        }
    }

    /// Every symbol's value at `(t, y)`.
    fn values(&self, t: f64, y: &[f64]) -> Vec<f64> {
        let mut vals = vec![0.0; self.sim.model.symbols.len()];
        let p = self.p.borrow();
        self.sim.code.values.eval(t, y, &p, &mut vals, self);
        vals
    }

    /// The value of `e` at the earlier time `t` (for `delay`).
    fn past(&self, e: &Expr, t: f64) -> f64 {
        let history = self.history.borrow();
        if history.is_empty() || t <= self.t0 {
            return eval(e, &InitEnv { model: &self.sim.model, vals: &self.vals0, t, shifted: true });
        }
        let mut yp = vec![0.0; self.sim.n_y() + self.sim.code.layout.p.len()];
        let now = self.now.borrow();
        history.at(t, (now.0, &now.1), &mut yp);
        drop(now);
        drop(history);
        eval(e, &PastEnv { run: self, t, n_y: self.sim.n_y(), yp })
    }

    fn record_history(&self, t: f64, y: &[f64]) {
        self.record_history_at(t, t, y);
    }

    /// Records `y` at `t` with the rate at `t_rate` (the left limit of a switch).
    fn record_history_at(&self, t: f64, t_rate: f64, y: &[f64]) {
        if !self.sim.has_delays && !self.dense {
            return;
        }
        let p = self.p.borrow().clone();
        let mut f = vec![0.0; y.len() + p.len()];
        self.sim.code.rhs.eval(t_rate, y, &p, &mut f[..y.len()], self);
        // Residual rows carry no derivative: interpolate those linearly.
        // Parameters are constant between events (which add a second sample).
        f[self.sim.n_ode..y.len()].iter_mut().for_each(|v| *v = f64::NAN);
        f[y.len()..].iter_mut().for_each(|v| *v = 0.0);
        let yp: Vec<f64> = y.iter().chain(&p).copied().collect();
        if !self.dense {
            self.history.borrow_mut().push(t, &yp, &f);
            return;
        }
        // The second derivative `J f + df/dt`: `J f` from the compiled
        // Jacobian, `df/dt` (rates that read time outside switches) by a
        // difference on the side the sample belongs to (before a restart:
        // the left).
        let code = &self.sim.code;
        let n_y = y.len();
        let mut d2 = vec![0.0; n_y + p.len()];
        let mut jv = vec![0.0; code.jac_pattern.len()];
        code.jac.eval(t_rate, y, &p, &mut jv, self);
        for (k, &(r, c)) in code.jac_pattern.iter().enumerate() {
            if r < n_y && c < n_y {
                d2[r] += jv[k] * f[c];
            }
        }
        if self.sim.reads_time {
            let dt = 1e-7 * t_rate.abs().max(1.0);
            let t2 = if t_rate < t { t_rate - dt } else { t_rate + dt };
            let mut f2 = vec![0.0; n_y];
            code.rhs.eval(t2, y, &p, &mut f2, self);
            for r in 0..n_y {
                d2[r] += (f2[r] - f[r]) / (t2 - t_rate);
            }
        }
        d2[self.sim.n_ode..n_y].iter_mut().for_each(|v| *v = f64::NAN);
        self.history.borrow_mut().push2(t, &yp, &f, &d2);
    }

    fn go(
        &self,
        tc: &TimeCourse,
        times: &[f64],
        columns: &[String],
        out_fn: &Function,
    ) -> Result<Trajectory, SimError> {
        let sim = self.sim;
        let n_y = sim.n_y();
        let ncol = columns.len();
        let t_end = *times.last().unwrap_or(&tc.start);
        let mut values = vec![f64::NAN; times.len() * ncol];
        let mut next_out = 0usize;
        let eps = |t: f64| 1e-10 * t.abs().max(1.0);

        let mut x = self.x0();
        let mut y = vec![0.0; n_y];
        let t0 = tc.start;
        self.check_start_values(t0, &x)?;
        if !self.full_y(t0, &x, &mut y) {
            return Err(SimError::Algebraic { t: t0 });
        }
        self.record_history(t0, &y);

        // Events at the start: triggers true at t0 fire if their initial value is false.
        let initial: Vec<bool> = sim.model.events.iter().map(|e| e.initial_value).collect();
        let mut queue = Queue::new(initial, tc.seed);
        self.fire_events(t0, &mut x, &mut queue)?;

        let emit = |t: f64, y: &[f64], row: usize, values: &mut [f64]| {
            let p = self.p.borrow();
            out_fn.eval(t, y, &p, &mut values[row * ncol..(row + 1) * ncol], self);
        };
        self.full_y(t0, &x, &mut y);
        self.record_history(t0, &y);
        while next_out < times.len() && times[next_out] <= t0 + eps(t0) {
            emit(times[next_out], &y, next_out, &mut values);
            next_out += 1;
        }

        let options = Options {
            rtol: tc.rtol,
            atol: tc.atol,
            max_steps: tc.max_steps,
            linear_solver: tc.linear_solver,
            fast_start: sim.smooth,
            ..Options::default()
        };
        let x_start = x.clone();
        let stats = vht_solver::integrate(self, t0, &x_start, &options, |it| -> Result<Stats, SimError> {
            let mut stop_at: Option<f64> = None;
            let mut trig = vec![0.0; sim.model.events.len()];
            let mut xi = vec![0.0; self.n_sys()];
            let mut stats = Stats::default();
            // The state switches' conditions since the last restart, and the
            // time switches' instants (recomputed after events change parameters).
            let mut sw = vec![0.0; sim.switches.conds.len()];
            let mut sw_prev = sw.clone();
            self.switch_conds(t0, &x_start, &mut sw_prev);
            let mut switch_at = self.switch_times(t0);

            while next_out < times.len() {
                if let Some(deadline) = tc.deadline {
                    if Instant::now() > deadline {
                        return Err(SimError::Timeout { t: it.t() });
                    }
                }
                let now = it.t();
                // The next time switch, and where the integrator stops for it:
                // just before the condition changes, because the corrector of
                // the step that ends there evaluates the rate at its end.
                let next_switch = switch_at
                    .iter()
                    .copied()
                    .filter(|&ts| ts > now)
                    .fold(None, |m: Option<f64>, ts| Some(m.map_or(ts, |m| m.min(ts))));
                let switch_stop = next_switch.map(|ts| ts.next_down().next_down());
                let want_stop = [queue.next_time(), switch_stop].into_iter().flatten().fold(t_end, f64::min).max(now);
                let mut at_stop = false;
                if stop_at != Some(want_stop) {
                    at_stop = it.set_stop_time(want_stop)?;
                    stop_at = (!at_stop).then_some(want_stop);
                }
                let t_prev = it.t();
                let outcome = if at_stop { Ok(StepOutcome::Stop { t: it.t() }) } else { it.step() };
                if let Some(t) = self.alg_failed.take() {
                    return Err(SimError::Algebraic { t });
                }
                let outcome = outcome?;
                // Where (if anywhere) in this step events need handling.
                // Where (if anywhere) in this step events need handling. The
                // root finder's answer is a hint: diffsol stops at any root
                // function that is exactly zero, even one that stays zero, so a
                // crossing elsewhere in the step can come back at the wrong time.
                // Whenever the triggers differ at the end of the step, the first
                // change is located by bisection on the triggers themselves.
                let t_end_step = it.t();
                let mut t_event = None;
                // At a time switch's stop: the instant the condition changes
                // (the integrator lands within round-off of it, maybe before).
                let mut flip = None;
                if let StepOutcome::Root { t } = outcome {
                    stop_at = None;
                    // The root finder may land exactly on the zero, where a
                    // strict relation has not flipped yet: look again just after.
                    let after = (t + 1e-11 * t.abs().max(1.0)).min(t_end_step);
                    for tp in [t, after] {
                        it.interpolate(tp, &mut xi)?;
                        if self.changed(tp, &xi, &queue, &mut trig, &sw_prev, &mut sw) {
                            t_event = Some(tp);
                            break;
                        }
                    }
                }
                if t_event.is_none() {
                    if let StepOutcome::Stop { t } = outcome {
                        stop_at = None;
                        let due = |te: Option<f64>| te.is_some_and(|te| te <= t + eps(t));
                        if due(switch_stop) {
                            flip = next_switch;
                        }
                        if due(queue.next_time()) || flip.is_some() {
                            t_event = Some(t);
                        }
                    }
                }
                if t_event.is_none() {
                    xi.copy_from_slice(it.y());
                    if self.changed(t_end_step, &xi, &queue, &mut trig, &sw_prev, &mut sw) {
                        let (mut a, mut b) = (t_prev, t_end_step);
                        while b - a > 1e-14 * b.abs().max(1.0) {
                            let mid = 0.5 * (a + b);
                            if mid <= a || mid >= b {
                                break;
                            }
                            it.interpolate(mid, &mut xi)?;
                            if self.changed(mid, &xi, &queue, &mut trig, &sw_prev, &mut sw) {
                                b = mid;
                            } else {
                                a = mid;
                            }
                        }
                        t_event = Some(b);
                    }
                }
                let t_reached = t_event.unwrap_or(it.t());
                // Outputs strictly before an event (or up to the step end) come from interpolation.
                while next_out < times.len() {
                    let to = times[next_out];
                    let before = match t_event {
                        Some(te) => to < te - eps(te),
                        None => to <= t_reached + eps(t_reached) && to >= t_prev - eps(t_prev),
                    };
                    if !before {
                        break;
                    }
                    let tq = to.clamp(t_prev, it.t());
                    it.interpolate(tq, &mut xi)?;
                    self.full_y(tq, &xi, &mut y);
                    emit(to, &y, next_out, &mut values);
                    next_out += 1;
                }
                if let Some(te) = t_event {
                    it.rewind_to(te)?;
                    // At a time switch the integrator stopped just before the
                    // instant: the sample before the restart carries the rate
                    // from before the switch.
                    let t_left = te;
                    let te = flip.map_or(te, |ts| ts.max(te));
                    x.copy_from_slice(it.y());
                    self.full_y(te, &x, &mut y);
                    self.record_history_at(te, t_left, &y);
                    self.fire_events(te, &mut x, &mut queue)?;
                    self.full_y(te, &x, &mut y);
                    self.record_history(te, &y);
                    it.restart(te, &x);
                    stop_at = None;
                    self.switch_conds(te, &x, &mut sw_prev);
                    switch_at = self.switch_times(te);
                    while next_out < times.len() && times[next_out] <= te + eps(te) {
                        emit(times[next_out], &y, next_out, &mut values);
                        next_out += 1;
                    }
                } else if sim.has_delays || self.dense {
                    x.copy_from_slice(it.y());
                    self.full_y(it.t(), &x, &mut y);
                    self.record_history(it.t(), &y);
                }
                if it.t() >= t_end - eps(t_end) && next_out >= times.len() {
                    break;
                }
            }
            stats += it.stats();
            Ok(stats)
        })??;
        Ok(Trajectory { names: columns.to_vec(), times: times.to_vec(), values, stats })
    }

    /// Evaluates the triggers and the state switches at `(t, x)`; true if
    /// any trigger differs from its last value or any switch from its value
    /// at the last restart (`sw_prev`).
    fn changed(&self, t: f64, x: &[f64], queue: &Queue, trig: &mut [f64], sw_prev: &[f64], sw: &mut [f64]) -> bool {
        if self.sim.model.events.is_empty() && sw.is_empty() {
            return false;
        }
        let mut y = self.y_roots.borrow_mut();
        self.full_y(t, x, &mut y);
        let p = self.p.borrow();
        self.sim.triggers.eval(t, &y, &p, trig, self);
        self.sim.switches.conds.eval(t, &y, &p, sw, self);
        // NaN-aware: a step function of a NaN must not look like a change at every step.
        let moved = sw.iter().zip(sw_prev).any(|(a, b)| a != b && !(a.is_nan() && b.is_nan()));
        trig.iter().zip(&queue.prev).any(|(&now, &before)| (now != 0.0) != before) || moved
    }

    /// The state switches' conditions at `(t, x)`.
    fn switch_conds(&self, t: f64, x: &[f64], sw: &mut [f64]) {
        if sw.is_empty() {
            return;
        }
        let mut y = self.y_roots.borrow_mut();
        self.full_y(t, x, &mut y);
        self.sim.switches.conds.eval(t, &y, &self.p.borrow(), sw, self);
    }

    /// The instants after `now` where the time switches change, from the
    /// current parameters. Each step function's argument is affine in `t`,
    /// and its next integer gives the step's next jump. Each relation's
    /// `g(t) = lhs - rhs` is affine in `t` until the next jump (after which
    /// this is computed again), so two evaluations give its zero. The instant
    /// kept is the first number where the value has changed (a few round-offs
    /// from the computed one), so that the integrator restarts with the rate
    /// of the new side. A switch with slope 0 never changes.
    fn switch_times(&self, now: f64) -> Vec<f64> {
        let sw = &self.sim.switches;
        let (n, m) = (sw.n_times, sw.n_steps);
        if n + m == 0 {
            return Vec::new();
        }
        let f = &sw.times;
        let len = 2 * (n + m);
        // Time switches read no state: any y will do.
        let y = vec![0.0; self.sim.n_y()];
        let p = self.p.borrow();
        let eval_at = |t: f64, out: &mut [f64]| f.eval(t, &y, &p, out, self);
        let mut h = vec![0.0; len];
        // The first number from a few round-offs below `ts` where output `k`
        // differs from `before`.
        let mut first_change = |ts: f64, k: usize, before: f64| -> Option<f64> {
            let mut t = ts.next_down().next_down().next_down().next_down();
            for _ in 0..64 {
                eval_at(t, &mut h);
                if h[k] != before && !(h[k].is_nan() && before.is_nan()) {
                    return Some(t);
                }
                t = t.next_up();
            }
            None
        };
        let (mut g0, mut g1, mut g) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        eval_at(now, &mut g0);
        eval_at(now + 1.0, &mut g1);
        let mut out = Vec::with_capacity(n + m);
        for j in 0..m {
            let (ka, kv) = (2 * n + j, 2 * n + m + j);
            let slope = g1[ka] - g0[ka];
            let a = g0[ka];
            if slope == 0.0 || !slope.is_finite() || !a.is_finite() {
                continue;
            }
            // The next integer the argument reaches; when it is on one
            // already, `ceil` (or `floor` going down) jumps right after `now`.
            let next = if slope > 0.0 { [a.floor() + 1.0, a] } else { [a.ceil() - 1.0, a] };
            let mut best: Option<f64> = None;
            for k in next {
                if k != k.round() {
                    continue;
                }
                let ts = now + (k - a) / slope;
                if let Some(t) = first_change(ts.max(now.next_up()), kv, g0[kv]) {
                    if t > now {
                        best = Some(best.map_or(t, |b: f64| b.min(t)));
                    }
                }
            }
            out.extend(best);
        }
        // The relations are affine up to the next jump of a step function.
        let jump = out.iter().copied().fold(f64::INFINITY, f64::min);
        let t1 = if jump.is_finite() { now + 0.5 * (jump - now) } else { now + 1.0 };
        if t1 != now + 1.0 {
            eval_at(t1, &mut g1);
        }
        for i in 0..n {
            let slope = (g1[i] - g0[i]) / (t1 - now);
            let mut ts = now - g0[i] / slope;
            if slope == 0.0 || !ts.is_finite() || ts <= now || ts >= jump {
                continue;
            }
            eval_at(ts, &mut g);
            ts -= g[i] / slope;
            if !ts.is_finite() || ts <= now {
                continue;
            }
            out.push(first_change(ts, n + i, g0[n + i]).unwrap_or(ts));
        }
        out
    }

    /// Schedules, cancels and executes events at time `t` until none is due,
    /// changing `x`, the parameters and the algebraic unknowns.
    fn fire_events(&self, t: f64, x: &mut [f64], queue: &mut Queue) -> Result<(), SimError> {
        let sim = self.sim;
        let events = &sim.model.events;
        if events.is_empty() {
            return Ok(());
        }
        const LIMIT: usize = 100_000;
        let eps = 1e-10 * t.abs().max(1.0);
        let mut y = vec![0.0; sim.n_y()];
        for _ in 0..LIMIT {
            if !self.full_y(t, x, &mut y) {
                return Err(SimError::Algebraic { t });
            }
            let vals = self.values(t, &y);
            let env = NowEnv { run: self, t, vals: &vals };
            for (i, ev) in events.iter().enumerate() {
                let now = eval(&ev.trigger, &env) != 0.0;
                if now && !queue.prev[i] {
                    let delay = ev.delay.as_ref().map_or(0.0, |d| eval(d, &env));
                    if delay < 0.0 {
                        return Err(SimError::NegativeDelay { t, tau: delay });
                    }
                    let values = ev
                        .use_values_from_trigger_time
                        .then(|| ev.assignments.iter().map(|a| eval(&a.value, &env)).collect());
                    queue.pending.push(Pending { event: i, time: t + delay, values });
                } else if !now && queue.prev[i] && !ev.persistent {
                    queue.pending.retain(|p| p.event != i);
                }
                queue.prev[i] = now;
            }
            let due: Vec<(usize, f64)> = queue
                .pending
                .iter()
                .enumerate()
                .filter(|(_, p)| p.time <= t + eps)
                .map(|(k, p)| {
                    let prio = events[p.event].priority.as_ref().map_or(f64::NEG_INFINITY, |e| eval(e, &env));
                    (k, prio)
                })
                .collect();
            let Some(k) = queue.choose(&due) else {
                return Ok(());
            };
            let pending = queue.pending.remove(k);
            let ev = &events[pending.event];
            if self.dense {
                self.firings.borrow_mut().push(Firing { t, event: pending.event, y: y.clone() });
            }
            let new_values: Vec<f64> = match pending.values {
                Some(v) => v,
                None => ev.assignments.iter().map(|a| eval(&a.value, &env)).collect(),
            };
            // Parameters change: Jacobian values at an unchanged point are stale.
            self.scratch.borrow_mut().jac_at = None;
            let mut p = self.p.borrow_mut();
            let mut z = self.z.borrow_mut();
            for (a, v) in ev.assignments.iter().zip(new_values) {
                match sim.slot(a.target) {
                    Slot::Y(i) if i < sim.n_ode => x[i] = v,
                    Slot::Y(i) => z[i - sim.n_ode] = v,
                    Slot::P(i) => p[i] = v,
                    Slot::Assigned => {}
                }
            }
        }
        Err(SimError::EventLoop { t, limit: LIMIT })
    }
}

impl System for Run<'_> {
    fn len(&self) -> usize {
        self.n_sys()
    }

    fn rhs(&self, t: f64, x: &[f64], dx: &mut [f64]) {
        let mut s = self.scratch.borrow_mut();
        let Scratch { y, f, .. } = &mut *s;
        self.full_y(t, x, y);
        let p = self.p.borrow();
        self.sim.code.rhs.eval(t, y, &p, f, self);
        let n_ode = self.sim.n_ode;
        if n_ode == 0 {
            dx[0] = 0.0;
        } else {
            dx.copy_from_slice(&f[..n_ode]);
        }
    }

    fn jac_mul(&self, t: f64, x: &[f64], v: &[f64], out: &mut [f64]) {
        let n_ode = self.sim.n_ode;
        if n_ode == 0 {
            out[0] = 0.0;
            return;
        }
        if self.sim.n_alg > 0 {
            // The reduced system's Jacobian goes through the algebraic
            // solve: a directional finite difference is simplest and exact enough.
            let norm_x = x.iter().fold(0.0f64, |m, a| m.max(a.abs()));
            let norm_v = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
            if norm_v == 0.0 {
                out.iter_mut().for_each(|o| *o = 0.0);
                return;
            }
            let h = 1e-8 * norm_x.max(1e-6) / norm_v;
            let xh: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + h * b).collect();
            let mut f0 = vec![0.0; n_ode];
            let mut f1 = vec![0.0; n_ode];
            self.rhs(t, x, &mut f0);
            self.rhs(t, &xh, &mut f1);
            for i in 0..n_ode {
                out[i] = (f1[i] - f0[i]) / h;
            }
            return;
        }
        let mut s = self.scratch.borrow_mut();
        let Scratch { jac, jac_at, .. } = &mut *s;
        let fresh = matches!(jac_at, Some((tj, xj)) if *tj == t && xj.as_slice() == x);
        if !fresh {
            let p = self.p.borrow();
            self.sim.code.jac.eval(t, x, &p, jac, self);
            match jac_at {
                Some((tj, xj)) => {
                    *tj = t;
                    xj.copy_from_slice(x);
                }
                None => *jac_at = Some((t, x.to_vec())),
            }
        }
        out.iter_mut().for_each(|o| *o = 0.0);
        let cols = &self.sim.jac_ode_cols;
        for (c, &vc) in v.iter().enumerate() {
            if vc != 0.0 {
                for &(k, r) in &self.sim.jac_ode[cols[c]..cols[c + 1]] {
                    out[r] += jac[k] * vc;
                }
            }
        }
    }

    fn n_roots(&self) -> usize {
        self.sim.roots.len()
    }

    fn jacobian_structure(&self) -> Option<&vht_solver::JacobianStructure> {
        self.sim.jac_structure.as_ref()
    }

    fn jacobian(&self, t: f64, x: &[f64], values: &mut [f64]) {
        self.sim.code.jac.eval(t, x, &self.p.borrow(), values, self);
    }

    fn roots(&self, t: f64, x: &[f64], g: &mut [f64]) {
        let mut y = self.y_roots.borrow_mut();
        self.full_y(t, x, &mut y);
        let p = self.p.borrow();
        self.sim.roots.eval(t, &y, &p, g, self);
    }
}

impl DelayHost for Run<'_> {
    fn delayed(&self, k: usize, t_past: f64) -> f64 {
        match self.delays.get(k) {
            Some(e) => self.past(e, t_past),
            None => f64::NAN,
        }
    }
}

/// Values while initial values are being computed: those not computed yet
/// are NaN. A delay can reach before the start (`shifted`), where the model
/// is taken to have followed its initial-value expressions (so an initial
/// assignment `sin(time)` means the quantity has been oscillating), and
/// assigned symbols their rules, as the SBML Test Suite expects.
struct InitEnv<'a> {
    model: &'a vht_ir::Model,
    vals: &'a [f64],
    t: f64,
    shifted: bool,
}

impl Env for InitEnv<'_> {
    fn value(&self, s: Sym) -> f64 {
        match &self.model.symbol(s).kind {
            SymbolKind::Assigned { expr } if self.shifted => eval(expr, self),
            _ if self.shifted && mentions_time(&self.model.symbol(s).initial) => {
                eval(&self.model.symbol(s).initial, self)
            }
            _ => self.vals[s.index()],
        }
    }
    fn time(&self) -> f64 {
        self.t
    }
    fn delayed(&self, e: &Expr, t_past: f64) -> f64 {
        eval(e, &InitEnv { model: self.model, vals: self.vals, t: t_past, shifted: true })
    }
}

/// Values at the current time, all precomputed.
struct NowEnv<'a, 's> {
    run: &'a Run<'s>,
    t: f64,
    vals: &'a [f64],
}

impl Env for NowEnv<'_, '_> {
    fn value(&self, s: Sym) -> f64 {
        self.vals[s.index()]
    }
    fn time(&self) -> f64 {
        self.t
    }
    fn delayed(&self, e: &Expr, t_past: f64) -> f64 {
        self.run.past(e, t_past)
    }
}

/// Values at an earlier time, from the history.
struct PastEnv<'a, 's> {
    run: &'a Run<'s>,
    t: f64,
    n_y: usize,
    /// y, then the parameters, at `t`.
    yp: Vec<f64>,
}

impl Env for PastEnv<'_, '_> {
    fn value(&self, s: Sym) -> f64 {
        match self.run.sim.slot(s) {
            Slot::Y(i) => self.yp[i],
            Slot::P(i) => self.yp[self.n_y + i],
            Slot::Assigned => match &self.run.sim.model.symbol(s).kind {
                SymbolKind::Assigned { expr } => eval(expr, self),
                _ => f64::NAN,
            },
        }
    }
    fn time(&self) -> f64 {
        self.t
    }
    fn delayed(&self, e: &Expr, t_past: f64) -> f64 {
        self.run.past(e, t_past)
    }
}

fn mentions_time(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| found |= matches!(x, Expr::Time));
    found
}

/// The output times of a time course, checked.
fn output_times(tc: &TimeCourse) -> Result<Vec<f64>, SimError> {
    let bad = |reason: String| Err(SimError::Settings { reason });
    if !tc.start.is_finite() {
        return bad(format!("start time {} is not finite", tc.start));
    }
    match &tc.times {
        Some(times) => {
            if let Some(t) = times.iter().find(|t| !t.is_finite() || **t < tc.start) {
                return bad(format!("output time {t} is not finite or is before the start {}", tc.start));
            }
            if let Some(w) = times.windows(2).find(|w| w[1] < w[0]) {
                return bad(format!("output times must not decrease ({} then {})", w[0], w[1]));
            }
            Ok(times.clone())
        }
        None => {
            if !(tc.points >= 2 && tc.end > tc.start && tc.end.is_finite()) {
                return bad(format!(
                    "need start < end and at least 2 points (got {}..{}, {} points)",
                    tc.start, tc.end, tc.points
                ));
            }
            let n = tc.points;
            Ok((0..n)
                .map(|i| if i + 1 == n { tc.end } else { tc.start + (tc.end - tc.start) * i as f64 / (n - 1) as f64 })
                .collect())
        }
    }
}
