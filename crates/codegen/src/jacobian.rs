//! Analytic sparse Jacobians: of the right-hand side with respect to y, and
//! of any expressions with respect to chosen slots of y and p.
//!
//! Assigned symbols are differentiated through, in dependency order, rather
//! than inlined: for each assigned symbol `a` and each column `j` it depends
//! on, a new assigned symbol `d(a)/d(y_j)` is added to a copy of the model,
//! defined by the chain rule over the symbols `a` reads. Jacobian entries
//! then read those symbols, so a rule read by many rates is differentiated
//! once, and the tape's sharing computes each derivative once per evaluation.
//! Inlining instead would copy a rule's expression into every entry that
//! reads it, which grows without bound along chains of rules.

use std::collections::BTreeMap;

use vht_ir::{derivative, evaluation_order, simplify, Expr, Model, NaryOp, Role, SymbolKind};

use crate::{CodegenError, Layout, Slot};

pub(crate) struct JacobianExprs {
    /// The model extended with one assigned symbol per nonzero derivative of an assigned symbol.
    pub model: Model,
    /// Slots of the extended model's symbols.
    pub slots: Vec<Option<Slot>>,
    /// (row, col), row-major sorted.
    pub pattern: Vec<(usize, usize)>,
    /// The entry expressions, in pattern order, over the extended model.
    pub values: Vec<Expr>,
}

pub(crate) fn jacobian(model: &Model, layout: &Layout, rhs: &[Expr]) -> Result<JacobianExprs, CodegenError> {
    jacobian_wrt(model, layout, rhs, &layout.y)
}

/// The Jacobian of `exprs` with respect to the symbols `wrt` (each stored
/// in y or p): column `j` is `wrt[j]`.
pub(crate) fn jacobian_wrt(
    model: &Model,
    layout: &Layout,
    rhs: &[Expr],
    wrt: &[vht_ir::Sym],
) -> Result<JacobianExprs, CodegenError> {
    let slots = layout.index(model)?;
    let mut col: Vec<Option<usize>> = vec![None; slots.len()];
    for (j, s) in wrt.iter().enumerate() {
        match slots.get(s.index()) {
            Some(Some(Slot::Y(_) | Slot::P(_))) => col[s.index()] = Some(j),
            _ => return Err(CodegenError::NotStored { symbol: model.name(*s).to_string() }),
        }
    }
    let mut ext = model.clone();
    // For each symbol: its nonzero derivatives by column, each either the
    // derivative symbol or (when trivial) the derivative itself.
    let mut dsym: Vec<Vec<(usize, Expr)>> = vec![Vec::new(); model.symbols.len()];

    for a in evaluation_order(model)? {
        // A rule-defined symbol that the layout stores in y is an unknown
        // there, not a computed value (the layout wins, as in lowering).
        if slots[a.index()] != Some(Slot::Assigned) {
            continue;
        }
        let SymbolKind::Assigned { expr } = &model.symbol(a).kind else { continue };
        for (j, g) in gradient(expr, &col, &dsym) {
            let entry = if matches!(g, Expr::Num(_) | Expr::Sym(_)) {
                g
            } else {
                let name = format!("d({})/d({})", model.name(a), model.name(wrt[j]));
                Expr::Sym(ext.add(&name, Role::Internal, SymbolKind::Assigned { expr: g }, Expr::Num(0.0)))
            };
            dsym[a.index()].push((j, entry));
        }
    }

    let mut pattern = Vec::new();
    let mut values = Vec::new();
    for (i, f) in rhs.iter().enumerate() {
        for (j, g) in gradient(f, &col, &dsym) {
            pattern.push((i, j));
            values.push(g);
        }
    }
    let slots = layout.index(&ext)?;
    Ok(JacobianExprs { model: ext, slots, pattern, values })
}

/// The nonzero partial derivatives of `e` with respect to y, by column, in
/// column order: direct dependence plus the chain rule through assigned
/// symbols (whose derivatives are in `dsym`).
fn gradient(e: &Expr, col: &[Option<usize>], dsym: &[Vec<(usize, Expr)>]) -> Vec<(usize, Expr)> {
    let mut terms: BTreeMap<usize, Vec<Expr>> = BTreeMap::new();
    for s in e.instant_symbols() {
        if let Some(j) = col[s.index()] {
            let d = derivative(e, s);
            if !d.is_num(0.0) {
                terms.entry(j).or_default().push(d);
            }
        } else if !dsym[s.index()].is_empty() {
            let d = derivative(e, s);
            if d.is_num(0.0) {
                continue;
            }
            for (j, ds) in &dsym[s.index()] {
                terms.entry(*j).or_default().push(d.clone() * ds.clone());
            }
        }
    }
    terms
        .into_iter()
        .map(|(j, ts)| (j, simplify(Expr::Nary(NaryOp::Add, ts))))
        .filter(|(_, g)| !g.is_num(0.0))
        .collect()
}
