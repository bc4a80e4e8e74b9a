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
//! A condition on parameters alone changes only at events, where the
//! integrator restarts anyway: it is neither. Equalities (`==`, `!=`) switch
//! on a set of measure zero and are left out.

use vht_codegen::{compile_exprs, CodegenError, Function, Layout, Options};
use vht_ir::{BinOp, Expr, Model, NaryOp, SymbolKind, UnOp};

pub(crate) struct Switches {
    /// The time switches (they read no state): first `lhs - rhs` of each,
    /// affine in `t`, then each condition as a boolean.
    pub times: Function,
    pub n_times: usize,
    /// Each state switch's condition, as a boolean.
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
        for e in roots {
            collect_relations(e, &mut relations);
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
        let n_times = times.len();
        times.extend(time_conds);
        Ok(Switches {
            times: compile_exprs(model, layout, &times, options)?,
            n_times,
            conds: compile_exprs(model, layout, &conds, options)?,
        })
    }
}

/// The order relations (`<`, `<=`, `>`, `>=`) anywhere in `e`, outside the
/// delayed argument of `delay` (read in the past, it switches at other times).
fn collect_relations<'e>(e: &'e Expr, out: &mut Vec<(BinOp, &'e Expr, &'e Expr)>) {
    match e {
        Expr::Bin(op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), a, b) => {
            out.push((*op, a, b));
            collect_relations(a, out);
            collect_relations(b, out);
        }
        Expr::Num(_) | Expr::Sym(_) | Expr::Time => {}
        Expr::Un(_, a) => collect_relations(a, out),
        Expr::Bin(_, a, b) => {
            collect_relations(a, out);
            collect_relations(b, out);
        }
        Expr::Delay(_, tau) => collect_relations(tau, out),
        Expr::Nary(_, args) => args.iter().for_each(|a| collect_relations(a, out)),
        Expr::Piecewise(pieces, otherwise) => {
            for (v, c) in pieces {
                collect_relations(v, out);
                collect_relations(c, out);
            }
            collect_relations(otherwise, out);
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

/// Whether `e` is `a * t + b` with `a` and `b` constant between events.
fn affine_in_time(e: &Expr, v: &[Varies]) -> bool {
    let constant = |x: &Expr| {
        let w = expr_varies(x, v);
        !w.time && !w.state
    };
    if constant(e) {
        return true;
    }
    match e {
        Expr::Time => true,
        Expr::Un(UnOp::Neg, a) => affine_in_time(a, v),
        Expr::Bin(BinOp::Sub, a, b) => affine_in_time(a, v) && affine_in_time(b, v),
        Expr::Bin(BinOp::Div, a, b) => affine_in_time(a, v) && constant(b),
        Expr::Nary(NaryOp::Add, args) => args.iter().all(|a| affine_in_time(a, v)),
        Expr::Nary(NaryOp::Mul, args) => {
            args.iter().filter(|a| !constant(a)).count() <= 1 && args.iter().all(|a| affine_in_time(a, v))
        }
        _ => false,
    }
}
