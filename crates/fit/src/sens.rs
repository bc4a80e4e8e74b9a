//! Exact gradients of the objective by forward sensitivities, and the
//! Gauss-Newton (Fisher information) approximation of its Hessian.
//!
//! The sensitivity system is an ordinary `vht_ir::Model`, simulated by the
//! ordinary `Simulator`: no solver change is needed. A *direction* is an
//! estimated parameter-table row whose value reaches the model (it sets a
//! model parameter, or a condition maps a model quantity to it). For every
//! model symbol `b` that can depend on direction `j`, the extended model has a
//! tangent symbol `T(b, j) = d b / d v_j` of the same kind:
//! - a state's tangent is a state with rate `sum_r (d rate_b / d r) T(r, j)`
//!   (which is `J s + df/dp`) and initial value the same sum over the
//!   initial-value expression;
//! - an assigned symbol's tangent is assigned by the chain rule over its rule;
//! - a parameter's tangent is a constant: the derivative of its initial-value
//!   expression, or (in a run that overrides the parameter) 1 or 0 depending
//!   on whether the override is the value of row `j`.
//!
//! Which `(b, j)` pairs exist is found by propagating dependence from the
//! symbols the directions set, to a fixed point, so the system holds only
//! tangents that can be nonzero. Partial derivatives shared by several
//! directions are assigned symbols (computed once per evaluation), as the
//! codegen Jacobian does.
//!
//! Because a run's overrides decide which row sets which parameter, the same
//! compiled system serves every condition: each override carries its own
//! derivative with respect to the directions, and the tangents of the
//! overridden symbols are overridden with it. This covers condition-specific
//! parameters, species reset by a condition, and pre-equilibration (the main
//! run starts from the steady state and its sensitivities).
//!
//! Steady states (pre-equilibration and `inf` times): the extended system is
//! simulated close to the steady state, then the model's states are polished
//! by Newton's method and the tangents solved from `J s = -df/dp` in the
//! conserved-moiety class the run stayed in ([`crate::steady`]). Where Newton
//! fails, the run continues until both the states and their tangents stop
//! moving (for a stable steady state the tangents converge to the same
//! solution).
//!
//! Events: each event gets companion assignments of the tangents, evaluated
//! (as SBML evaluates an event's assignments) before any assignment is made;
//! the simulator then carries them like any other assignment. They are the
//! jump `s+ = dh/dx s- + dh/dp + ((dh/dx) f- - f+) dtau/dp` of an assignment
//! `x := h(x, p)` (`h = x` for a state the event leaves alone), with
//! `dtau/dp = -(dg/dx s- + dg/dp) / (dg/dx f- + dg/dt)` for a trigger `g > 0`;
//! `dtau/dp = 0` for a trigger on time at a fixed time (doses).
//!
//! Switches of the vector field (order relations in rates and rules, as in
//! `piecewise(dose, t < t_end, 0)` or a production gated by `x > thr`)
//! whose crossing time depends on the directions make the tangents jump by
//! `(f- - f+) dtau/dp`: each such relation gets two events in the extended
//! model (upward and downward crossings of `g`) carrying only those jumps,
//! with `f-`, `f+` the rates with the relation held at its value before and
//! after (through the rules that read it).
//!
//! Not handled (an error names it): events whose time depends on an
//! estimated parameter through a delay, or through a trigger that is not a
//! single comparison; `floor`, `ceil`, `rem`, `quotient`, `=` and `!=` of
//! quantities that depend on estimated parameters; algebraic rules and
//! `delay`.

use rayon::prelude::*;
use vht_ir::eval::eval;
use vht_ir::{derivative, simplify, BinOp, Expr, NaryOp, Role, Sym, SymbolKind, UnOp};
use vht_sim::{Column, Outputs, Simulator, Trajectory};

use crate::objective::{nllh_term, Experiment, Extra, Objective, RowEnv, Target, Val};
use crate::problem::{NoiseDistribution, PriorKind, Scale, Transformation};
use crate::FitError;

/// The compiled sensitivity system of an [`Objective`].
pub(crate) struct Sensitivities {
    pub(crate) sim: Simulator,
    outputs: Outputs,
    /// Direction -> parameter-table row.
    pub(crate) dirs: Vec<usize>,
    /// Parameter-table row -> direction.
    dir_of: Vec<Option<usize>>,
    /// Per model symbol: its tangents `(direction, symbol)`, by direction.
    pub(crate) tangent: Vec<Vec<(usize, Sym)>>,
    /// Per model symbol: `(direction, output column)` of its tangents, for
    /// the symbols the objective reads (observables, states, sizes).
    tcols: Vec<Vec<(usize, usize)>>,
    /// Per ODE state (in `Objective::state_cols` order): `(direction, rate column)`.
    trates: Vec<Vec<(usize, usize)>>,
    /// Per observable: partial derivatives of `h` and of `sigma` by the
    /// symbols (model symbols and extras) they read.
    pub(crate) dh: Vec<Vec<(Sym, Expr)>>,
    pub(crate) dsigma: Vec<Vec<(Sym, Expr)>>,
    /// The output columns plus a state snapshot, for runs to a steady state.
    steady: crate::steady::SteadyOutputs,
    /// Per ODE state of the model (its `y` order): `(direction, index in
    /// this system's y)` of its tangents. Empty when this system's `y` and
    /// `p` do not start with the model's (then Newton is not used).
    tstate: Vec<Vec<(usize, usize)>>,
}

/// An override with its derivative by direction (sparse).
pub(crate) struct Ov {
    pub(crate) sym: Sym,
    pub(crate) value: f64,
    d: Vec<(usize, f64)>,
}

/// Objective, gradient and Gauss-Newton Hessian contributions over the
/// estimated parameters (scaled).
pub(crate) struct Acc {
    pub(crate) f: f64,
    pub(crate) g: Vec<f64>,
    /// Row-major `n x n`.
    h: Vec<f64>,
}

impl Acc {
    pub(crate) fn new(n: usize) -> Acc {
        Acc { f: 0.0, g: vec![0.0; n], h: vec![0.0; n * n] }
    }
    pub(crate) fn add(mut self, o: Acc) -> Acc {
        self.f += o.f;
        self.g.iter_mut().zip(&o.g).for_each(|(a, b)| *a += b);
        self.h.iter_mut().zip(&o.h).for_each(|(a, b)| *a += b);
        self
    }
    /// `h += w v v^T` for a sparse `v`.
    fn outer(&mut self, w: f64, v: &[(usize, f64)]) {
        let n = self.g.len();
        for &(a, va) in v {
            for &(b, vb) in v {
                self.h[a * n + b] += w * va * vb;
            }
        }
    }
}

pub(crate) fn build(obj: &Objective) -> Result<Sensitivities, FitError> {
    let model = &obj.sim.model;
    let unsupported = |what: String| FitError::Sensitivities { file: obj.problem.model.clone(), what };
    if !model.algebraic.is_empty() {
        return Err(unsupported("the model has algebraic rules; their sensitivities are not implemented".into()));
    }
    for s in &model.symbols {
        let delayed = s.initial.contains_delay()
            || match &s.kind {
                SymbolKind::State { rate } => rate.contains_delay(),
                SymbolKind::Assigned { expr } => expr.contains_delay(),
                _ => false,
            };
        if delayed {
            return Err(unsupported(format!("'{}' reads delay(); delay sensitivities are not implemented", s.name)));
        }
    }

    let params = &obj.problem.parameters;
    let mut reaches = vec![false; params.len()];
    for (i, t) in obj.param_targets.iter().enumerate() {
        reaches[i] |= t.is_some();
    }
    for c in &obj.condition_targets {
        for (_, v) in c {
            if let Val::Parameter(i) = v {
                reaches[*i] = true;
            }
        }
    }
    let dirs: Vec<usize> = (0..params.len()).filter(|&i| reaches[i] && params[i].estimate).collect();
    let mut dir_of = vec![None; params.len()];
    for (j, &i) in dirs.iter().enumerate() {
        dir_of[i] = Some(j);
    }
    let nd = dirs.len();
    let n = model.symbols.len();

    // Which symbol can depend on which direction: the seeds, then a fixed point.
    let mut dep = vec![vec![false; nd]; n];
    for (i, t) in obj.param_targets.iter().enumerate() {
        if let (Some(q), Some(j)) = (t, dir_of[i]) {
            dep[q.index()][j] = true;
        }
    }
    for c in &obj.condition_targets {
        for (t, v) in c {
            let Val::Parameter(i) = v else { continue };
            let Some(j) = dir_of[*i] else { continue };
            match t {
                Target::Direct(s) => dep[s.index()][j] = true,
                Target::Amount { init, amount, .. } => {
                    dep[init.index()][j] = true;
                    dep[amount.index()][j] = true;
                }
            }
        }
    }
    let mut reads: Vec<Vec<Sym>> = model
        .symbols
        .iter()
        .map(|s| match &s.kind {
            SymbolKind::Assigned { expr } => expr.instant_symbols(),
            SymbolKind::State { rate } => {
                let mut r = rate.instant_symbols();
                r.extend(s.initial.instant_symbols());
                r
            }
            _ => s.initial.instant_symbols(),
        })
        .collect();
    // An event assignment makes its target depend on what its value reads;
    // an event whose time depends on a parameter moves the jumps of every
    // quantity whose value or rate it changes, so they depend on what its
    // trigger reads.
    let touched: Vec<Vec<bool>> = model.events.iter().map(|ev| touched_by(model, ev)).collect();
    for (ev, touched) in model.events.iter().zip(&touched) {
        for a in &ev.assignments {
            reads[a.target.index()].extend(a.value.instant_symbols());
        }
        let trigger = ev.trigger.instant_symbols();
        for (b, &t) in touched.iter().enumerate() {
            if t && !matches!(model.symbols[b].kind, SymbolKind::Assigned { .. }) {
                reads[b].extend(trigger.iter().copied());
            }
        }
    }
    for r in &mut reads {
        r.retain(|x| x.index() < n);
    }
    loop {
        let mut changed = false;
        for b in 0..n {
            for r in &reads[b] {
                if r.index() == b {
                    continue;
                }
                let (from, to) = if r.index() < b {
                    let (lo, hi) = dep.split_at_mut(b);
                    (&lo[r.index()], &mut hi[0])
                } else {
                    let (lo, hi) = dep.split_at_mut(r.index());
                    (&hi[0], &mut lo[b])
                };
                for (t, &f) in to.iter_mut().zip(from.iter()) {
                    if f && !*t {
                        *t = true;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }

    // Events: an assignment `x := h(x, p)` at time tau makes the tangents jump
    // to `dh/dx s + dh/dp + ((dh/dx) f- - f+) dtau/dp`. The time of an event
    // may depend on the directions through its trigger when that is one
    // comparison `a > b` (or <, <=, >=) and the event has no delay; a
    // parameter-dependent delay is not handled.
    let depends =
        |e: &Expr| e.instant_symbols().into_iter().find(|r| r.index() < n && dep[r.index()].iter().any(|&d| d));
    for ev in &model.events {
        if let Some(r) = ev.delay.as_ref().and_then(depends) {
            return Err(unsupported(format!(
                "the delay of event '{}' reads '{}', which depends on estimated parameters; sensitivities across \
                 events with a parameter-dependent delay are not implemented",
                ev.name,
                model.symbols[r.index()].name
            )));
        }
        if let Some(r) = depends(&ev.trigger) {
            if ev.delay.is_some() || crossing(&ev.trigger).is_none() {
                return Err(unsupported(format!(
                    "event '{}' fires at a time that depends on estimated parameters (its trigger reads '{}'), and \
                     its trigger is not a single comparison or it has a delay; sensitivities across such events \
                     are not implemented",
                    ev.name,
                    model.symbols[r.index()].name
                )));
            }
        }
    }

    let mut ext = model.clone();
    let mut tangent: Vec<Vec<(usize, Sym)>> = vec![Vec::new(); n];
    for b in 0..n {
        for j in 0..nd {
            if !dep[b][j] {
                continue;
            }
            let kind = match &model.symbols[b].kind {
                SymbolKind::Parameter => SymbolKind::Parameter,
                SymbolKind::State { .. } => SymbolKind::State { rate: Expr::Num(0.0) },
                SymbolKind::Assigned { .. } => SymbolKind::Assigned { expr: Expr::Num(0.0) },
                SymbolKind::Algebraic => unreachable!("algebraic models are rejected above"),
            };
            let name = format!("d({})/d({})", model.symbols[b].name, params[dirs[j]].id);
            tangent[b].push((j, ext.add(&name, Role::Internal, kind, Expr::Num(0.0))));
        }
    }
    // The partial derivatives of `e` by the symbols that have tangents; with
    // `named`, nontrivial ones become assigned symbols shared by all directions.
    let partials = |e: &Expr, owner: &str, named: bool, ext: &mut vht_ir::Model| -> Vec<(Sym, Expr, bool)> {
        let mut out = Vec::new();
        for r in e.instant_symbols() {
            if r.index() >= n || tangent[r.index()].is_empty() {
                continue;
            }
            let d = derivative(e, r);
            if d.is_num(0.0) {
                continue;
            }
            let d = guard_logs(d);
            let risky = may_be_infinite(&d);
            let d = if named && !matches!(d, Expr::Num(_) | Expr::Sym(_)) {
                let name = format!("∂({})/∂({})", owner, model.symbols[r.index()].name);
                Expr::Sym(ext.add(&name, Role::Internal, SymbolKind::Assigned { expr: d }, Expr::Num(0.0)))
            } else {
                d
            };
            out.push((r, d, risky));
        }
        out
    };
    let along = |parts: &[(Sym, Expr, bool)], j: usize| -> Expr {
        let terms: Vec<Expr> = parts
            .iter()
            .filter_map(|(r, d, risky)| {
                tangent[r.index()].iter().find(|(k, _)| *k == j).map(|&(_, t)| {
                    let term = d.clone() * Expr::Sym(t);
                    // x^b with b < 1 has an infinite derivative at x = 0,
                    // where the tangent is often exactly 0 too (a species
                    // that starts at 0): the product is then 0, not NaN.
                    if *risky {
                        Expr::Piecewise(
                            vec![(Expr::Num(0.0), Expr::bin(BinOp::Eq, Expr::Sym(t), Expr::Num(0.0)))],
                            Box::new(term),
                        )
                    } else {
                        term
                    }
                })
            })
            .collect();
        if terms.is_empty() {
            Expr::Num(0.0)
        } else {
            simplify(Expr::Nary(NaryOp::Add, terms))
        }
    };
    for (b, tangents) in tangent.iter().enumerate() {
        if tangents.is_empty() {
            continue;
        }
        let sym = model.symbols[b].clone();
        match &sym.kind {
            SymbolKind::Parameter => {
                let parts = partials(&sym.initial, &sym.name, false, &mut ext);
                for &(j, t) in tangents {
                    ext.symbols[t.index()].initial = along(&parts, j);
                }
            }
            SymbolKind::State { rate } => {
                let parts_rate = partials(rate, &format!("d/dt {}", sym.name), true, &mut ext);
                let parts_init = partials(&sym.initial, &sym.name, false, &mut ext);
                for &(j, t) in tangents {
                    ext.symbols[t.index()].kind = SymbolKind::State { rate: along(&parts_rate, j) };
                    ext.symbols[t.index()].initial = along(&parts_init, j);
                }
            }
            SymbolKind::Assigned { expr } => {
                let parts = partials(expr, &sym.name, true, &mut ext);
                for &(j, t) in tangents {
                    ext.symbols[t.index()].kind = SymbolKind::Assigned { expr: along(&parts, j) };
                }
            }
            SymbolKind::Algebraic => {}
        }
    }

    // Each event carries the jumps of the tangents as extra assignments,
    // evaluated (as SBML evaluates all of an event's assignments) before any
    // assignment is made, so at the state just before the event. With
    // `D(e)` the time derivative of `e` along the run and `F+` the rate
    // after the event, the jump of a quantity `b` set to `h` (or left alone,
    // `h = b`) is `T(b, j) := dh/dv T(v, j) + (D(h) - F+_b) dtau/dp_j`, with
    // `dtau/dp_j = -(dg/dv T(v, j)) / D(g)` for the trigger `g > 0`
    // (0 for an event that fires at the start because its trigger is true there).
    for (k, ev) in model.events.iter().enumerate() {
        let timed: Vec<usize> = match crossing(&ev.trigger) {
            Some(_) => (0..nd)
                .filter(|&j| ev.trigger.instant_symbols().iter().any(|r| r.index() < n && dep[r.index()][j]))
                .collect(),
            None => Vec::new(),
        };
        let mut dtau: Vec<(usize, Expr)> = Vec::new();
        if let (Some(g), false) = (crossing(&ev.trigger), timed.is_empty()) {
            let parts = partials(&g, &format!("{}: trigger", ev.name), false, &mut ext);
            let dg = time_derivative(model, &g);
            for &j in &timed {
                let value = Expr::Num(0.0) - along(&parts, j) / dg.clone();
                let at_start = Expr::bin(BinOp::Le, Expr::Time, Expr::Num(0.0));
                dtau.push((j, Expr::Piecewise(vec![(Expr::Num(0.0), at_start)], Box::new(value))));
            }
        }
        let targets: std::collections::HashMap<Sym, Expr> =
            ev.assignments.iter().map(|a| (a.target, a.value.clone())).collect();
        let mut jumps = Vec::new();
        for (b, tangents) in tangent.iter().enumerate() {
            let sym = Sym(b as u32);
            let h = targets.get(&sym);
            let moves =
                !dtau.is_empty() && touched[k][b] && !matches!(model.symbols[b].kind, SymbolKind::Assigned { .. });
            if tangents.is_empty() || (h.is_none() && !moves) {
                continue;
            }
            let parts = h.map(|h| partials(h, &format!("{}: {}", ev.name, model.symbols[b].name), false, &mut ext));
            let slope = if dtau.is_empty() {
                Expr::Num(0.0)
            } else {
                let before = match h {
                    Some(h) => time_derivative(model, h),
                    None => time_derivative(model, &Expr::Sym(sym)),
                };
                let after = match &model.symbols[b].kind {
                    SymbolKind::State { rate } => after_event(model, &targets, &touched[k], rate),
                    _ => Expr::Num(0.0),
                };
                simplify(before - after)
            };
            for &(j, t) in tangents {
                let base = match &parts {
                    Some(p) => along(p, j),
                    None => Expr::Sym(t),
                };
                let value = match dtau.iter().find(|(jj, _)| *jj == j) {
                    Some((_, d)) if !slope.is_num(0.0) => base + slope.clone() * d.clone(),
                    _ if h.is_none() => continue,
                    _ => base,
                };
                jumps.push(vht_ir::EventAssignment { target: t, value });
            }
        }
        ext.events[k].assignments.extend(jumps);
    }

    // Switches of the vector field (order relations in rates and rules,
    // e.g. `piecewise(dose, t < t_end, 0)`) whose crossing time depends on
    // the directions: the rates jump there, so the tangents jump by
    // `(f- - f+) dtau/dp` (the event rule with no assignment). Each such
    // relation gets two events in the extended model, one per direction of
    // crossing, that carry only those jumps; `f-` and `f+` are the rates
    // with the relation held at its value before and after the crossing.
    let mut atoms: Vec<Expr> = Vec::new();
    for sym in &model.symbols {
        let e = match &sym.kind {
            SymbolKind::State { rate } => rate,
            SymbolKind::Assigned { expr } => expr,
            _ => continue,
        };
        let mut bad = None;
        e.walk(&mut |x| match x {
            Expr::Bin(BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge, ..) => {
                if !atoms.contains(x) {
                    atoms.push(x.clone());
                }
            }
            Expr::Un(UnOp::Floor | UnOp::Ceil, a) | Expr::Bin(BinOp::Rem | BinOp::Quotient, a, _) => {
                bad = bad.or(depends(a));
            }
            Expr::Bin(BinOp::Eq | BinOp::Neq, a, b) => bad = bad.or(depends(a)).or(depends(b)),
            _ => {}
        });
        if let Some(r) = bad {
            return Err(unsupported(format!(
                "'{}' switches (floor, ceil, rem, quotient, = or !=) at a time that depends on '{}', which depends on \
                 estimated parameters; sensitivities across such switches are not implemented",
                sym.name,
                model.symbols[r.index()].name
            )));
        }
    }
    for (k, atom) in atoms.iter().enumerate() {
        let Some(g) = crossing(atom) else { continue };
        let timed: Vec<usize> =
            (0..nd).filter(|&j| g.instant_symbols().iter().any(|r| r.index() < n && dep[r.index()][j])).collect();
        if timed.is_empty() {
            continue;
        }
        let parts = partials(&g, &format!("switch {k}"), false, &mut ext);
        // `crossing` gives the `g` that is positive where the relation holds.
        for upward in [true, false] {
            let (before, after) = (!upward, upward);
            let dg = force(model, &time_derivative(model, &g), atom, before);
            let at_start = Expr::bin(BinOp::Le, Expr::Time, Expr::Num(0.0));
            let mut assignments = Vec::new();
            for (b, tangents) in tangent.iter().enumerate() {
                let SymbolKind::State { rate } = &model.symbols[b].kind else { continue };
                let jump = simplify(force(model, rate, atom, before) - force(model, rate, atom, after));
                if jump.is_num(0.0) {
                    continue;
                }
                for &(j, t) in tangents {
                    if !timed.contains(&j) {
                        continue;
                    }
                    let dtau = Expr::Num(0.0) - along(&parts, j) / dg.clone();
                    let dtau = Expr::Piecewise(vec![(Expr::Num(0.0), at_start.clone())], Box::new(dtau));
                    assignments.push(vht_ir::EventAssignment { target: t, value: Expr::Sym(t) + jump.clone() * dtau });
                }
            }
            if assignments.is_empty() {
                continue;
            }
            let op = if upward { BinOp::Ge } else { BinOp::Le };
            ext.events.push(vht_ir::Event {
                name: format!("switch {k} ({})", if upward { "upward" } else { "downward" }),
                trigger: Expr::bin(op, g.clone(), Expr::Num(0.0)),
                // Not at the start: only crossings move.
                initial_value: true,
                persistent: true,
                delay: None,
                priority: None,
                use_values_from_trigger_time: true,
                assignments,
            });
        }
    }

    // Output columns: the objective's own, then the tangents it reads.
    let mut columns = obj.columns.clone();
    let mut wanted: Vec<Sym> = obj.col_of.keys().copied().collect();
    wanted.extend(obj.state_cols.iter().map(|&(s, _, _)| s));
    wanted.sort();
    wanted.dedup();
    let mut tcols = vec![Vec::new(); n];
    for &b in &wanted {
        for &(j, t) in &tangent[b.index()] {
            tcols[b.index()].push((j, columns.len()));
            columns.push(Column { name: ext.name(t).to_string(), expr: Expr::Sym(t) });
        }
    }
    let mut trates = Vec::new();
    for &(x, _, _) in &obj.state_cols {
        let mut rates = Vec::new();
        for &(j, t) in &tangent[x.index()] {
            let SymbolKind::State { rate } = &ext.symbols[t.index()].kind else { continue };
            rates.push((j, columns.len()));
            columns.push(Column { name: format!("d/dt {}", ext.name(t)), expr: rate.clone() });
        }
        trates.push(rates);
    }

    let obs_partials = |e: &Expr| -> Vec<(Sym, Expr)> {
        e.instant_symbols()
            .into_iter()
            .filter_map(|s| {
                let d = guard_logs(derivative(e, s));
                (!d.is_num(0.0)).then_some((s, d))
            })
            .collect()
    };
    let dh = obj.observables.iter().map(|o| obs_partials(&o.h)).collect();
    let dsigma = obj.observables.iter().map(|o| obs_partials(&o.sigma)).collect();

    let file = obj.problem.model.clone();
    let sim = Simulator::new(ext, &vht_codegen::Options::default())
        .map_err(|error| FitError::Build { file: file.clone(), error })?;
    let outputs = sim.outputs(&columns).map_err(|error| FitError::Outputs { file: file.clone(), error })?;
    let steady = crate::steady::SteadyOutputs::new(&sim, &columns, &file)?;
    // The extended model appends its symbols, so its y and p start with the model's.
    let (lo, le) = (&obj.sim.code.layout, &sim.code.layout);
    let prefix = le.y.len() >= lo.y.len()
        && le.y[..lo.y.len()] == lo.y[..]
        && le.p.len() >= lo.p.len()
        && le.p[..lo.p.len()] == lo.p[..];
    let tstate = if prefix {
        let index: std::collections::HashMap<Sym, usize> = le.y.iter().enumerate().map(|(k, &s)| (s, k)).collect();
        lo.y[..lo.n_ode]
            .iter()
            .map(|x| tangent[x.index()].iter().filter_map(|&(j, t)| index.get(&t).map(|&k| (j, k))).collect())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Sensitivities { sim, outputs, dirs, dir_of, tangent, tcols, trates, dh, dsigma, steady, tstate })
}

impl Sensitivities {
    /// The derivative of a resolved value by the directions.
    fn val_d(&self, v: Val) -> Vec<(usize, f64)> {
        match v {
            Val::Parameter(i) => self.dir_of[i].map(|j| vec![(j, 1.0)]).unwrap_or_default(),
            Val::Number(_) => Vec::new(),
        }
    }

    /// The overrides of a run, first one per symbol wins, each followed by
    /// the overrides of its tangents.
    pub(crate) fn overrides(&self, ovs: &[Ov]) -> Vec<(Sym, f64)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for o in ovs {
            if !seen.insert(o.sym) {
                continue;
            }
            out.push((o.sym, o.value));
            if let Some(ts) = self.tangent.get(o.sym.index()) {
                for &(j, t) in ts {
                    let d = o.d.iter().filter(|(k, _)| *k == j).map(|(_, v)| v).sum();
                    out.push((t, d));
                }
            }
        }
        out
    }

    /// The first row at or after `from` where both the states and their
    /// tangents have stopped moving (the objective's steady-state criterion
    /// applied to each).
    fn steady_row(&self, obj: &Objective, traj: &Trajectory, from: usize, condition: &str) -> Result<usize, FitError> {
        let ss = &obj.settings.steady_state;
        let mut last = (f64::NAN, f64::NAN);
        for i in from..traj.times.len() {
            let r = traj.row(i);
            let norm = |pairs: &mut dyn Iterator<Item = (usize, usize)>| {
                let (mut sum, mut count) = (0.0, 0usize);
                for (vc, rc) in pairs {
                    sum += (r[rc] / (ss.atol + ss.rtol * r[vc].abs())).powi(2);
                    count += 1;
                }
                (sum / count.max(1) as f64).sqrt()
            };
            let nx = norm(&mut obj.state_cols.iter().map(|&(_, vc, rc)| (vc, rc)));
            let ns =
                norm(&mut obj.state_cols.iter().zip(&self.trates).flat_map(|(&(x, _, _), rates)| {
                    rates.iter().map(move |&(j, rc)| (self.tcol(x, j).unwrap_or(rc), rc))
                }));
            if nx < 1.0 && ns < 1.0 {
                return Ok(i);
            }
            last = (traj.times[i], nx.max(ns));
        }
        Err(FitError::SteadyState { condition: condition.to_string(), t: last.0, norm: last.1 })
    }

    /// The steady state of a run with the steady-state outputs, and its
    /// sensitivities: the model's states polished by Newton's method from the
    /// first row at or after `from` where they have stopped moving (or the
    /// last row), and the tangents from `J s = -df/dp` (see
    /// [`crate::steady`]). Where Newton does not succeed, the first row where
    /// both the states and their tangents have stopped moving.
    fn steady_point(
        &self,
        obj: &Objective,
        traj: &Trajectory,
        from: usize,
        condition: &str,
    ) -> Result<(f64, Vec<f64>), FitError> {
        if let Some(row) = self.newton_point(obj, traj, from) {
            return Ok(row);
        }
        let i = self.steady_row(obj, traj, from, condition)?;
        Ok((traj.times[i], traj.row(i).to_vec()))
    }

    fn newton_point(&self, obj: &Objective, traj: &Trajectory, from: usize) -> Option<(f64, Vec<f64>)> {
        let n = obj.sim.code.layout.n_ode;
        if self.tstate.len() != n {
            return None;
        }
        let ss = &obj.settings.steady_state;
        let i = (from..traj.times.len())
            .find(|&i| {
                let r = traj.row(i);
                let x: Vec<f64> = obj.state_cols.iter().map(|&(_, vc, _)| r[vc]).collect();
                let f: Vec<f64> = obj.state_cols.iter().map(|&(_, _, rc)| r[rc]).collect();
                crate::steady::weighted_norm(ss, &x, &f) < 1.0
            })
            .or(traj.times.len().checked_sub(1).filter(|&l| l >= from))?;
        let t = traj.times[i];
        let (y, p) = self.steady.split(traj.row(i));
        let np = obj.sim.code.layout.p.len();
        let st = crate::steady::newton(&obj.sim, t, &y[..n], &p[..np], ss)?;
        let mut y = y.to_vec();
        y[..n].copy_from_slice(&st.x);
        self.steady_tangents(&st, t, &mut y, p)?;
        Some((t, self.steady.row(t, &y, p)))
    }

    fn tcol(&self, b: Sym, j: usize) -> Option<usize> {
        self.tcols[b.index()].iter().find(|(k, _)| *k == j).map(|&(_, c)| c)
    }

    /// Overrides of the parameter table's model parameters.
    fn base(&self, obj: &Objective, values: &[f64], out: &mut Vec<Ov>) {
        for (i, t) in obj.param_targets.iter().enumerate() {
            if let Some(q) = t {
                out.push(Ov { sym: *q, value: values[i], d: self.val_d(Val::Parameter(i)) });
            }
        }
    }

    /// The output row at the steady state of a pre-equilibration condition.
    /// The output row at the steady state of a pre-equilibration
    /// condition, with the tangents by Newton without integrating them:
    /// the model alone is run to its steady state (and polished), then
    /// `J s = -df/dp` is solved with the conserved totals of the tangents'
    /// initial values (`L s` does not change along a run). `None` where
    /// Newton is not accepted (then [`Self::preequilibrate`] integrates the
    /// tangents too).
    pub(crate) fn preequilibrate_newton(
        &self,
        obj: &Objective,
        pre: usize,
        values: &[f64],
    ) -> Result<Option<Vec<f64>>, FitError> {
        let n = obj.sim.code.layout.n_ode;
        if self.tstate.len() != n {
            return Ok(None);
        }
        let name = &obj.problem.conditions[pre].id;
        let ovs = self.preequilibration_overrides(obj, pre, values);
        let plain: Vec<(Sym, f64)> = ovs.iter().map(|o| (o.sym, o.value)).collect();
        let traj = obj.run_on(&obj.sim, &obj.steady.outputs, &[], true, &plain, name)?;
        let (t, row) = obj.steady_point(&traj, 0, name)?;
        let (y, p) = obj.steady.split(&row);
        let Some(st) = crate::steady::newton(&obj.sim, t, &y[..n], p, &obj.settings.steady_state) else {
            return Ok(None);
        };
        let vals = vht_sim::initial_values(&self.sim, 0.0, &self.overrides(&ovs))
            .map_err(|error| FitError::Simulation { condition: name.clone(), error })?;
        let le = &self.sim.code.layout;
        let mut ye: Vec<f64> = le.y.iter().map(|s| vals[s.index()]).collect();
        let pe: Vec<f64> = le.p.iter().map(|s| vals[s.index()]).collect();
        ye[..n].copy_from_slice(&st.x);
        if self.steady_tangents(&st, t, &mut ye, &pe).is_none() {
            return Ok(None);
        }
        Ok(Some(self.steady.row(t, &ye, &pe)))
    }

    /// Replaces the tangents in the extended state `y` (whose model states
    /// are the steady state `st.x`) by the steady state's sensitivities,
    /// `J s = -df/dp`, keeping the conserved totals of the tangents `y`
    /// holds (`L s` does not change along a run).
    fn steady_tangents(&self, st: &crate::steady::Steady, t: f64, y: &mut [f64], p: &[f64]) -> Option<()> {
        let n = st.x.len();
        let now_all = y.to_vec();
        // The tangents' rates at zero tangents are df/dp (they are J s + df/dp).
        for &(_, k) in self.tstate.iter().flatten() {
            y[k] = 0.0;
        }
        let mut rates = vec![0.0; self.sim.code.rhs.len()];
        self.sim.code.rhs.eval(t, y, p, &mut rates, &vht_codegen::NoDelays);
        let (mut fp, mut now) = (vec![0.0; n], vec![0.0; n]);
        for j in 0..self.dirs.len() {
            fp.iter_mut().for_each(|v| *v = 0.0);
            now.iter_mut().for_each(|v| *v = 0.0);
            for (x, ts) in self.tstate.iter().enumerate() {
                if let Some(&(_, k)) = ts.iter().find(|(jj, _)| *jj == j) {
                    fp[x] = rates[k];
                    now[x] = now_all[k];
                }
            }
            let s = st.tangent(&fp, &now)?;
            for (x, ts) in self.tstate.iter().enumerate() {
                if let Some(&(_, k)) = ts.iter().find(|(jj, _)| *jj == j) {
                    y[k] = s[x];
                }
            }
        }
        Some(())
    }

    /// What a pre-equilibration condition sets, with derivatives.
    fn preequilibration_overrides(&self, obj: &Objective, pre: usize, values: &[f64]) -> Vec<Ov> {
        let mut ovs = Vec::new();
        for &(t, v) in &obj.condition_targets[pre] {
            let x = v.get(values);
            if !x.is_nan() {
                let sym = match t {
                    Target::Direct(s) => s,
                    Target::Amount { init, .. } => init,
                };
                ovs.push(Ov { sym, value: x, d: self.val_d(v) });
            }
        }
        self.base(obj, values, &mut ovs);
        ovs
    }

    pub(crate) fn preequilibrate(&self, obj: &Objective, pre: usize, values: &[f64]) -> Result<Vec<f64>, FitError> {
        let name = &obj.problem.conditions[pre].id;
        let ovs = self.preequilibration_overrides(obj, pre, values);
        let traj = obj.run_on(&self.sim, &self.steady.outputs, &[], true, &self.overrides(&ovs), name)?;
        Ok(self.steady_point(obj, &traj, 0, name)?.1)
    }

    /// The overrides of one experiment's simulation, with their derivatives:
    /// what its condition sets, and (after pre-equilibration) the states
    /// the pre-equilibration ended in, with their tangents from `pre_row`.
    pub(crate) fn experiment_overrides(
        &self,
        obj: &Objective,
        e: &Experiment,
        values: &[f64],
        pre_row: Option<&[f64]>,
    ) -> Vec<Ov> {
        let mut ovs = Vec::new();
        let targets = &obj.condition_targets[e.sim];
        if let Some(r) = pre_row {
            // Species the main condition sets are reset; the rest start where
            // pre-equilibration ended (with their sensitivities).
            for &(t, v) in targets {
                let x = v.get(values);
                if x.is_nan() {
                    continue;
                }
                match t {
                    Target::Direct(s) => ovs.push(Ov { sym: s, value: x, d: self.val_d(v) }),
                    Target::Amount { amount, size, .. } => {
                        let set = targets.iter().find(|(t2, v2)| {
                            matches!(t2, Target::Direct(s2) if *s2 == size) && !v2.get(values).is_nan()
                        });
                        let (size_now, dsize) = match set {
                            Some(&(_, v2)) => (v2.get(values), self.val_d(v2)),
                            None => (
                                r[obj.col_of[&size]],
                                self.tcols[size.index()].iter().map(|&(j, c)| (j, r[c])).collect(),
                            ),
                        };
                        let mut d: Vec<(usize, f64)> =
                            self.val_d(v).into_iter().map(|(j, dv)| (j, dv * size_now)).collect();
                        d.extend(dsize.into_iter().map(|(j, ds)| (j, x * ds)));
                        ovs.push(Ov { sym: amount, value: x * size_now, d });
                    }
                }
            }
            for &(s, vc, _) in &obj.state_cols {
                let d = self.tcols[s.index()].iter().map(|&(j, c)| (j, r[c])).collect();
                ovs.push(Ov { sym: s, value: r[vc], d });
            }
        } else {
            for &(t, v) in targets {
                let x = v.get(values);
                if !x.is_nan() {
                    let sym = match t {
                        Target::Direct(s) => s,
                        Target::Amount { init, .. } => init,
                    };
                    ovs.push(Ov { sym, value: x, d: self.val_d(v) });
                }
            }
        }
        self.base(obj, values, &mut ovs);
        ovs
    }

    pub(crate) fn experiment(
        &self,
        obj: &Objective,
        e: &Experiment,
        values: &[f64],
        pre_row: Option<&[f64]>,
        est: &[Option<usize>],
        chain: &[f64],
    ) -> Result<Acc, FitError> {
        let ovs = self.experiment_overrides(obj, e, values, pre_row);
        let outputs = if e.steady { &self.steady.outputs } else { &self.outputs };
        let traj = obj.run_on(&self.sim, outputs, &e.times, e.steady, &self.overrides(&ovs), &e.name)?;
        let ss = if e.steady { Some(self.steady_point(obj, &traj, e.times.len(), &e.name)?) } else { None };

        let ne = chain.len();
        let mut acc = Acc::new(ne);
        let (mut extra_vals, mut extra_src) = extras(obj, values);
        // Scratch: derivative by parameter-table row.
        let mut dmu = vec![0.0; values.len()];
        let mut dsig = vec![0.0; values.len()];
        for r in &e.rows {
            let meas = &obj.problem.measurements[r.measurement];
            let code = &obj.observables[r.observable];
            fill_placeholders(code, r, values, &mut extra_vals, &mut extra_src);
            let (row, t) = match (r.time, &ss) {
                (Some(i), _) => (traj.row(i), e.times[i]),
                (None, Some((t, row))) => (row.as_slice(), *t),
                (None, None) => (traj.row(0), traj.times[0]),
            };
            let env = RowEnv { col_of: &obj.col_of, row, extras: &extra_vals, n_model: obj.n_model, t };
            let h = eval(&code.h, &env);
            let sigma = eval(&code.sigma, &env);
            let nllh = nllh_term(meas.value, h, sigma, code.transformation, code.noise);
            acc.f += nllh;

            for (parts, out) in [(&self.dh[r.observable], &mut dmu), (&self.dsigma[r.observable], &mut dsig)] {
                out.iter_mut().for_each(|v| *v = 0.0);
                for (s, d) in parts {
                    let pd = eval(d, &env);
                    if pd == 0.0 {
                        continue;
                    }
                    if s.index() < obj.n_model {
                        for &(j, c) in &self.tcols[s.index()] {
                            out[self.dirs[j]] += pd * row[c];
                        }
                    } else if let Some(i) = extra_src[s.index() - obj.n_model] {
                        out[i] += pd;
                    }
                }
            }
            let NoiseTerms { dt, g_mu, g_sigma, w_sigma } = noise_terms(meas.value, h, sigma, code);
            let to_scaled = |v: &[f64]| -> Vec<(usize, f64)> {
                v.iter()
                    .enumerate()
                    .filter(|(_, x)| **x != 0.0)
                    .filter_map(|(i, x)| est[i].map(|k| (k, x * chain[k])))
                    .collect()
            };
            let mu: Vec<(usize, f64)> = to_scaled(&dmu).into_iter().map(|(k, x)| (k, x * dt)).collect();
            let sg = to_scaled(&dsig);
            for &(k, x) in &mu {
                acc.g[k] += g_mu * x;
            }
            for &(k, x) in &sg {
                acc.g[k] += g_sigma * x;
            }
            acc.outer(1.0 / (sigma * sigma), &mu);
            acc.outer(w_sigma / (sigma * sigma), &sg);
        }
        Ok(acc)
    }
}

/// The values of the objective's extras (parameter-table rows that are not
/// model symbols; placeholders NaN until a row fills them), and the row each
/// comes from.
pub(crate) fn extras(obj: &Objective, values: &[f64]) -> (Vec<f64>, Vec<Option<usize>>) {
    obj.extras
        .iter()
        .map(|x| match x {
            Extra::Parameter(i) => (values[*i], Some(*i)),
            Extra::Placeholder => (f64::NAN, None),
        })
        .unzip()
}

/// Fills a measurement's observable and noise placeholders.
pub(crate) fn fill_placeholders(
    code: &crate::objective::ObsCode,
    r: &crate::objective::Row,
    values: &[f64],
    vals: &mut [f64],
    src: &mut [Option<usize>],
) {
    for (slots, given) in [(&code.obs_slots, &r.obs_vals), (&code.noise_slots, &r.noise_vals)] {
        for (slot, v) in slots.iter().zip(given) {
            if let Some(k) = slot {
                vals[*k] = v.get(values);
                src[*k] = match v {
                    Val::Parameter(i) => Some(*i),
                    Val::Number(_) => None,
                };
            }
        }
    }
}

/// The derivatives of one measurement's likelihood term.
pub(crate) struct NoiseTerms {
    /// `d(transformed h)/dh`.
    pub(crate) dt: f64,
    /// `d nllh / d(transformed h)`.
    pub(crate) g_mu: f64,
    /// `d nllh / d sigma`.
    pub(crate) g_sigma: f64,
    /// The Fisher information of sigma, times `sigma^2`.
    pub(crate) w_sigma: f64,
}

pub(crate) fn noise_terms(y: f64, h: f64, sigma: f64, code: &crate::objective::ObsCode) -> NoiseTerms {
    // On the transformed scale.
    let (yt, ht, dt) = match code.transformation {
        Transformation::Lin => (y, h, 1.0),
        Transformation::Log => (y.ln(), h.ln(), 1.0 / h),
        Transformation::Log10 => (y.log10(), h.log10(), 1.0 / (h * std::f64::consts::LN_10)),
    };
    let res = yt - ht;
    let (g_mu, g_sigma, w_sigma) = match code.noise {
        NoiseDistribution::Normal => (-res / (sigma * sigma), 1.0 / sigma - res * res / sigma.powi(3), 2.0),
        NoiseDistribution::Laplace => (-res.signum() / sigma, 1.0 / sigma - res.abs() / (sigma * sigma), 1.0),
    };
    NoiseTerms { dt, g_mu, g_sigma, w_sigma }
}

/// `g` for a trigger that is one comparison `a > b` (`g = a - b`, which
/// crosses zero where the event fires), or `None`.
fn crossing(trigger: &Expr) -> Option<Expr> {
    match trigger {
        Expr::Bin(BinOp::Gt | BinOp::Ge, a, b) => Some((**a).clone() - (**b).clone()),
        Expr::Bin(BinOp::Lt | BinOp::Le, a, b) => Some((**b).clone() - (**a).clone()),
        _ => None,
    }
}

/// `e` with the order relation `atom` held at `value` (through the assigned
/// symbols that read it, which are inlined).
fn force(model: &vht_ir::Model, e: &Expr, atom: &Expr, value: bool) -> Expr {
    e.clone().map(&mut |x| match x {
        x if &x == atom => Expr::Num(if value { 1.0 } else { 0.0 }),
        Expr::Sym(s) => match model.symbols.get(s.index()).map(|m| &m.kind) {
            Some(SymbolKind::Assigned { expr }) if mentions(model, expr, atom) => force(model, expr, atom, value),
            _ => Expr::Sym(s),
        },
        x => x,
    })
}

/// Whether `e` reads `atom`, directly or through assigned symbols.
fn mentions(model: &vht_ir::Model, e: &Expr, atom: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |y| {
        if found {
            return;
        }
        found |= y == atom;
        if let Expr::Sym(s) = y {
            if let Some(SymbolKind::Assigned { expr }) = model.symbols.get(s.index()).map(|m| &m.kind) {
                found |= mentions(model, expr, atom);
            }
        }
    });
    found
}

/// Which symbols an event changes, in value or in rate: its targets, the
/// assigned symbols that read them (transitively), and the states whose
/// rate reads any of those.
fn touched_by(model: &vht_ir::Model, ev: &vht_ir::Event) -> Vec<bool> {
    let n = model.symbols.len();
    let mut t = vec![false; n];
    for a in &ev.assignments {
        t[a.target.index()] = true;
    }
    let reads_touched = |e: &Expr, t: &[bool]| e.instant_symbols().iter().any(|r| r.index() < n && t[r.index()]);
    loop {
        let mut changed = false;
        for b in 0..n {
            if let (false, SymbolKind::Assigned { expr }) = (t[b], &model.symbols[b].kind) {
                if reads_touched(expr, &t) {
                    t[b] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let states: Vec<usize> = (0..n)
        .filter(|&b| matches!(&model.symbols[b].kind, SymbolKind::State { rate } if reads_touched(rate, &t)))
        .collect();
    for b in states {
        t[b] = true;
    }
    t
}

/// `e` just after an event, in terms of the values just before it: each
/// target replaced by its assigned value, each assigned symbol the event
/// changes by its expression (so replaced in turn).
fn after_event(
    model: &vht_ir::Model,
    targets: &std::collections::HashMap<Sym, Expr>,
    touched: &[bool],
    e: &Expr,
) -> Expr {
    let n = model.symbols.len();
    e.clone().map(&mut |x| match x {
        Expr::Sym(s) => match targets.get(&s) {
            Some(h) => h.clone(),
            None => match &model.symbols.get(s.index()).map(|m| &m.kind) {
                Some(SymbolKind::Assigned { expr }) if s.index() < n && touched[s.index()] => {
                    after_event(model, targets, touched, expr)
                }
                _ => Expr::Sym(s),
            },
        },
        x => x,
    })
}

/// The derivative of `e` by time along a run: `de/dt + sum_v de/dv D(v)`,
/// with `D(state)` its rate, `D(parameter) = 0` and `D(assigned)` that of
/// its expression.
fn time_derivative(model: &vht_ir::Model, e: &Expr) -> Expr {
    // Time is not a symbol: differentiate by a stand-in that no model uses.
    let t = Sym(u32::MAX);
    let with_t = e.clone().map(&mut |x| if matches!(x, Expr::Time) { Expr::Sym(t) } else { x });
    let mut terms = vec![guard_logs(derivative(&with_t, t)).map(&mut |x| {
        if matches!(x, Expr::Sym(s) if s == t) {
            Expr::Time
        } else {
            x
        }
    })];
    for r in e.instant_symbols() {
        let Some(sym) = model.symbols.get(r.index()) else { continue };
        let dr = match &sym.kind {
            SymbolKind::State { rate } => rate.clone(),
            SymbolKind::Assigned { expr } => time_derivative(model, expr),
            SymbolKind::Parameter | SymbolKind::Algebraic => continue,
        };
        let d = guard_logs(derivative(e, r));
        if d.is_num(0.0) || dr.is_num(0.0) {
            continue;
        }
        terms.push(d * dr);
    }
    simplify(Expr::Nary(NaryOp::Add, terms))
}

/// `ln(a)` in a derivative becomes 0 where `a <= 0`: `d(a^b)/db = a^b ln(a)`
/// is 0 at `a = 0` (for `b > 0`) but evaluates as `0 * -inf = NaN`; where
/// `a < 0` the power itself is already NaN.
fn guard_logs(e: Expr) -> Expr {
    e.map(&mut |x| match x {
        Expr::Un(UnOp::Ln, a) => Expr::Piecewise(
            vec![(Expr::Un(UnOp::Ln, a.clone()), Expr::bin(BinOp::Gt, (*a).clone(), Expr::Num(0.0)))],
            Box::new(Expr::Num(0.0)),
        ),
        x => x,
    })
}

/// Whether `e` may be infinite at finite arguments: it holds a power whose
/// exponent is not a non-negative integer constant, or a logarithm.
/// (Divisions are left out: guarding every rational rate law would cost
/// more than the rare division by a quantity that starts at zero.)
fn may_be_infinite(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| match x {
        Expr::Bin(BinOp::Pow, _, b) => {
            found |= !matches!(**b, Expr::Num(v) if v >= 0.0 && v.fract() == 0.0);
        }
        Expr::Un(UnOp::Ln, _) => found = true,
        _ => {}
    });
    found
}

/// `d v / d x` for a parameter on its scale (`x` scaled, `v` linear).
pub(crate) fn chain(scale: Scale, v: f64) -> f64 {
    match scale {
        Scale::Lin => 1.0,
        Scale::Log => v,
        Scale::Log10 => v * std::f64::consts::LN_10,
    }
}

/// The prior's negative log-density, its derivative by the scaled value, and
/// its Gauss-Newton curvature (the squared derivative of the "residual").
pub(crate) fn prior_terms(prior: crate::Prior, scale: Scale, x: f64, v: f64) -> (f64, f64, f64) {
    let f = crate::neg_log_prior(prior, x, v);
    let c = chain(scale, v);
    let (a, b) = (prior.a, prior.b);
    let (g, h) = match prior.kind {
        PriorKind::Uniform | PriorKind::ParameterScaleUniform => (0.0, 0.0),
        PriorKind::ParameterScaleNormal => ((x - a) / (b * b), 1.0 / (b * b)),
        PriorKind::ParameterScaleLaplace => ((x - a).signum() / b, 0.0),
        PriorKind::Normal => ((v - a) / (b * b) * c, c * c / (b * b)),
        PriorKind::Laplace => ((v - a).signum() / b * c, 0.0),
        PriorKind::LogNormal => (((v.ln() - a) / (b * b) + 1.0) / v * c, (c / v).powi(2) / (b * b)),
        PriorKind::LogLaplace => (((v.ln() - a).signum() / b + 1.0) / v * c, 0.0),
    };
    (f, g, h)
}

/// The objective, its gradient and its Gauss-Newton Hessian at scaled
/// estimated parameters `x`.
pub(crate) fn evaluate(obj: &Objective, x: &[f64]) -> Result<crate::WithGradient, FitError> {
    let values = obj.values_from_scaled(x)?;
    let sens = obj.sensitivities()?;
    let estimated = obj.estimated();
    let mut est = vec![None; values.len()];
    for (k, &i) in estimated.iter().enumerate() {
        est[i] = Some(k);
    }
    let chains: Vec<f64> = estimated.iter().map(|&i| chain(obj.problem.parameters[i].scale, values[i])).collect();

    let mut pres: Vec<usize> = obj.experiments.iter().filter_map(|e| e.preeq).collect();
    pres.sort();
    pres.dedup();
    let pre_rows: Vec<(usize, Vec<f64>)> = pres
        .par_iter()
        .map(|&p| {
            let row = match sens.preequilibrate_newton(obj, p, &values)? {
                Some(row) => row,
                None => sens.preequilibrate(obj, p, &values)?,
            };
            Ok((p, row))
        })
        .collect::<Result<_, FitError>>()?;
    let n = estimated.len();
    let adjoint = match obj.settings.gradient {
        crate::Gradient::Forward => None,
        crate::Gradient::Adjoint => Some(obj.adjoints(sens)?),
    };
    let acc = obj
        .experiments
        .par_iter()
        .map(|e| {
            let pre = e.preeq.and_then(|p| pre_rows.iter().find(|(q, _)| *q == p)).map(|(_, r)| r.as_slice());
            match adjoint {
                Some(adj) if !e.steady => adj.experiment(obj, sens, e, &values, pre, &est, &chains),
                _ => sens.experiment(obj, e, &values, pre, &est, &chains),
            }
        })
        .try_reduce(|| Acc::new(n), |a, b| Ok(a.add(b)))?;
    let mut acc = acc;
    for (k, &i) in estimated.iter().enumerate() {
        let p = &obj.problem.parameters[i];
        if let Some(prior) = p.prior {
            let (f, g, h) = prior_terms(prior, p.scale, x[k], values[i]);
            acc.f += f;
            acc.g[k] += g;
            acc.h[k * n + k] += h;
        }
    }
    // Adjoint gradients come without the Gauss-Newton Hessian.
    let hess =
        if adjoint.is_some() { Vec::new() } else { (0..n).map(|a| acc.h[a * n..(a + 1) * n].to_vec()).collect() };
    Ok((acc.f, acc.g, hess))
}
