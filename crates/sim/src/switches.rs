//! Discontinuities of the vector field: the conditions of `piecewise` (and
//! comparisons used as values) in the rates, in the assignment rules the rates
//! read, and in algebraic rules.
//!
//! A BDF step taken across such a switch integrates a polynomial through a
//! jump in the derivative; its error estimate does not see the jump well, so
//! the solution (and, in `vht-fit`, its sensitivities) carries an error of
//! the size of the step times the jump. As CVODE users (AMICI, libroadrunner
//! with `piecewise` triggers) do, the run stops exactly at each switch and
//! restarts the integrator there, as after an event without assignments.
//!
//! Two kinds of conditions:
//! - **time switches**: the condition reads only time and constants, and
//!   `lhs - rhs` is affine in time (`t <= t_end`, `t > k * tau`). Its zero is
//!   computed from the parameters (at the start and after each event, which
//!   may change them) and becomes an integrator stop time: no step crosses it.
//! - **state switches**: everything else that can change during a run. The
//!   conditions are evaluated as booleans after every step, like event
//!   triggers, and the first change inside a step is located on the dense
//!   output (see `run.rs`).
//!
//! The step functions `floor`, `ceil` and `quotient` (and `rem`, through the
//! quotient it subtracts) switch where their argument crosses an integer:
//! with an argument affine in time alone, the next crossing is a stop time
//! (recomputed at each restart); otherwise they are watched like state
//! switches, by their value.
//!
//! A condition on parameters alone changes only at events, where the
//! integrator restarts anyway: it is neither. Equalities (`==`, `!=`) switch
//! on a set of measure zero and are left out.

use vht_codegen::{compile_exprs, CodegenError, Function, Layout, Options};
use vht_ir::{BinOp, Expr, Model, NaryOp, SymbolKind, UnOp};

pub(crate) struct Switches {
    /// The time switches (they read no state): `lhs - rhs` of each relation
    /// (affine in `t`), each relation as a boolean, then the argument of each
    /// step function (affine in `t`) and its value.
    pub times: Function,
    /// Relations among the time switches.
    pub n_times: usize,
    /// Step functions among the time switches.
    pub n_steps: usize,
    /// Each state switch's condition, as a boolean, and each step function's value.
    pub conds: Function,
}

/// How a symbol's value can change during a run (between events).
#[derive(Clone, Copy, Default)]
struct Varies {
    time: bool,
    state: bool,
}

impl Switches {
    pub fn new(model: &Model, layout: &Layout, options: &Options) -> Result<Switches, CodegenError> {
        let varies = varies(model);
        // The expressions the integrator evaluates: the rates, the algebraic
        // residuals and every assignment rule they read (an assignment read
        // only by outputs or events does not shape the solution).
        let mut roots: Vec<&Expr> = Vec::new();
        for s in &model.symbols {
            if let SymbolKind::State { rate } = &s.kind {
                roots.push(rate);
            }
        }
        roots.extend(&model.algebraic);
        let mut seen = vec![false; model.symbols.len()];
        let mut k = 0;
        while k < roots.len() {
            for s in roots[k].instant_symbols() {
                if !seen[s.index()] {
                    seen[s.index()] = true;
                    if let SymbolKind::Assigned { expr } = &model.symbol(s).kind {
                        roots.push(expr);
                    }
                }
            }
            k += 1;
        }
        let mut relations = Vec::new();
        let mut steps = Vec::new();
        for e in roots {
            collect(e, &mut relations, &mut steps);
        }
        let mut times = Vec::new();
        let mut time_conds = Vec::new();
        let mut conds = Vec::new();
        for (op, a, b) in relations {
            let g = Expr::bin(BinOp::Sub, a.clone(), b.clone());
            let v = expr_varies(&g, &varies);
            if !v.time && !v.state {
                continue;
            }
            let c = Expr::bin(op, a.clone(), b.clone());
            if !v.state && affine_in_time(&g, &varies) {
                if !time_conds.contains(&c) {
                    times.push(g);
                    time_conds.push(c);
                }
            } else {
                if !conds.contains(&c) {
                    conds.push(c);
                }
            }
        }
        let mut step_args = Vec::new();
        let mut step_values = Vec::new();
        for e in steps {
            let v = expr_varies(&e, &varies);
            if !v.time && !v.state {
                continue;
            }
            let arg = match &e {
                Expr::Un(_, a) => (**a).clone(),
                Expr::Bin(BinOp::Quotient, a, b) => Expr::bin(BinOp::Div, (**a).clone(), (**b).clone()),
                _ => continue,
            };
            if !v.state && affine_in_time(&arg, &varies) {
                if !step_values.contains(&e) {
                    step_args.push(arg);
                    step_values.push(e);
                }
            } else if !conds.contains(&e) {
                conds.push(e);
            }
        }
        let n_times = times.len();
        let n_steps = step_args.len();
        times.extend(time_conds);
        times.extend(step_args);
        times.extend(step_values);
        Ok(Switches {
            times: compile_exprs(model, layout, &times, options)?,
            n_times,
            n_steps,
            conds: compile_exprs(model, layout, &conds, options)?,
        })
    }
}

/// The order relations (`<`, `<=`, `>`, `>=`) anywhere in `e`, and the
/// step functions, outside the delayed argument of `delay` (read in the past,
/// it switches at other times).
fn collect<'e>(e: &'e Expr, rel: &mut Vec<(BinOp, &'e Expr, &'e Expr)>, steps: &mut Vec<Expr>) {
    match e {
        Expr::Bin(op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), a, b) => rel.push((*op, a, b)),
        Expr::Un(UnOp::Floor | UnOp::Ceil, _) | Expr::Bin(BinOp::Quotient, ..) => steps.push(e.clone()),
        // `rem(a, b) = a - b * quotient(a, b)` jumps where the quotient does.
        Expr::Bin(BinOp::Rem, a, b) => steps.push(Expr::bin(BinOp::Quotient, (**a).clone(), (**b).clone())),
        _ => {}
    }
    match e {
        Expr::Num(_) | Expr::Sym(_) | Expr::Time => {}
        Expr::Un(_, a) => collect(a, rel, steps),
        Expr::Bin(_, a, b) => {
            collect(a, rel, steps);
            collect(b, rel, steps);
        }
        Expr::Delay(_, tau) => collect(tau, rel, steps),
        Expr::Nary(_, args) => args.iter().for_each(|a| collect(a, rel, steps)),
        Expr::Piecewise(pieces, otherwise) => {
            for (v, c) in pieces {
                collect(v, rel, steps);
                collect(c, rel, steps);
            }
            collect(otherwise, rel, steps);
        }
    }
}

/// Per symbol: whether it can change with time or with the state between
/// events. Assignment rules are resolved in dependency order.
fn varies(model: &Model) -> Vec<Varies> {
    let mut v: Vec<Varies> = model
        .symbols
        .iter()
        .map(|s| match s.kind {
            SymbolKind::State { .. } | SymbolKind::Algebraic => Varies { time: false, state: true },
            _ => Varies::default(),
        })
        .collect();
    // `Model::check` (run before this) guarantees the order exists.
    for s in vht_ir::evaluation_order(model).unwrap_or_default() {
        if let SymbolKind::Assigned { expr } = &model.symbol(s).kind {
            v[s.index()] = expr_varies(expr, &v);
        }
    }
    v
}

fn expr_varies(e: &Expr, v: &[Varies]) -> Varies {
    let mut out = Varies::default();
    e.walk(&mut |x| match x {
        Expr::Time => out.time = true,
        Expr::Sym(s) => {
            let w = v.get(s.index()).copied().unwrap_or(Varies { time: true, state: true });
            out.time |= w.time;
            out.state |= w.state;
        }
        // The past of the solution: treat as changing with everything.
        Expr::Delay(..) => {
            out.time = true;
            out.state = true;
        }
        _ => {}
    });
    out
}

/// Whether `e` is `a * t + b` with `a` and `b` constant between events and
/// between the jumps of the step functions of time it contains (which are
/// stop times themselves): `t - 24 * floor(t / 24)`, `rem(t, 24)` qualify.
fn affine_in_time(e: &Expr, v: &[Varies]) -> bool {
    if locally_constant(e, v) {
        return true;
    }
    match e {
        Expr::Time => true,
        Expr::Un(UnOp::Neg, a) => affine_in_time(a, v),
        Expr::Bin(BinOp::Sub, a, b) => affine_in_time(a, v) && affine_in_time(b, v),
        Expr::Bin(BinOp::Div | BinOp::Rem, a, b) => affine_in_time(a, v) && locally_constant(b, v),
        Expr::Nary(NaryOp::Add, args) => args.iter().all(|a| affine_in_time(a, v)),
        Expr::Nary(NaryOp::Mul, args) => {
            args.iter().filter(|a| !locally_constant(a, v)).count() <= 1 && args.iter().all(|a| affine_in_time(a, v))
        }
        _ => false,
    }
}

/// Whether `e` is constant between events and between the jumps of the step
/// functions of time it contains.
fn locally_constant(e: &Expr, v: &[Varies]) -> bool {
    let w = expr_varies(e, v);
    if w.state {
        return false;
    }
    if !w.time {
        return true;
    }
    match e {
        Expr::Un(UnOp::Floor | UnOp::Ceil, a) => affine_in_time(a, v),
        Expr::Bin(BinOp::Quotient, a, b) => affine_in_time(a, v) && locally_constant(b, v),
        Expr::Num(_) => true,
        Expr::Sym(_) | Expr::Time | Expr::Delay(..) => false,
        Expr::Un(_, a) => locally_constant(a, v),
        Expr::Bin(_, a, b) => locally_constant(a, v) && locally_constant(b, v),
        Expr::Nary(_, args) => args.iter().all(|a| locally_constant(a, v)),
        Expr::Piecewise(pieces, otherwise) => {
            pieces.iter().all(|(x, c)| locally_constant(x, v) && locally_constant(c, v))
                && locally_constant(otherwise, v)
        }
    }
}
