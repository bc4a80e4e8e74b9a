//! Fast reactions: reactions taken to be at equilibrium at every instant.
//!
//! With `N_f` the stoichiometry of the fast reactions over the species they
//! change, the fast subsystem is lowered as a DAE:
//! - each vector `l` of a basis of the left null space of `N_f` is a
//!   quantity the fast reactions conserve; it becomes a new state
//!   `T = l·amounts` driven only by the slow reactions: `dT/dt = l·(slow rates)`;
//! - the fast species' amounts become algebraic unknowns fixed by
//!   `l·amounts − T = 0` (one per conservation law) and `v_j = 0` for a set
//!   of linearly independent fast reactions (as many as the rank of `N_f`),
//!   which together are exactly as many equations as fast species.
//!
//! Stoichiometries and conversion factors must be constant; they are
//! evaluated at the start (an initial assignment can set them).

use std::collections::HashMap;

use vht_ir::eval::{eval, Env};
use vht_ir::{EventAssignment, Expr, Model, NaryOp, Role, Sym, SymbolKind};

use crate::lower::{Entity, Lowering, Setter};
use crate::LowerError;

/// Pivot threshold for the elimination on the (small, mostly integer) matrices.
const EPS: f64 = 1e-9;

/// The fast subsystem of a model (empty when no reaction is fast).
pub(crate) struct FastSystem {
    fast: Vec<bool>,
}

impl FastSystem {
    pub fn new(l: &Lowering) -> FastSystem {
        FastSystem { fast: l.doc.model.reactions.iter().map(|r| r.fast).collect() }
    }

    pub fn is_fast(&self, r: usize) -> bool {
        self.fast.get(r).copied().unwrap_or(false)
    }

    /// Turns the fast species into algebraic unknowns; call once every
    /// other equation is in place (their slow rates are the species' rates).
    pub fn apply(
        &self,
        l: &mut Lowering,
        syms: &HashMap<String, Sym>,
        stoich: &[(Vec<Expr>, Vec<Expr>)],
    ) -> Result<(), LowerError> {
        let fast_rx: Vec<usize> = (0..self.fast.len()).filter(|&r| self.fast[r]).collect();
        if fast_rx.is_empty() {
            return Ok(());
        }
        let m = &l.doc.model;
        let values = initial_values(&l.model).map_err(|source| LowerError::Check { file: l.file.clone(), source })?;
        let env = Values { v: &values };

        // The species the fast reactions change, and their amount symbols;
        // each fast reaction's column of N_f, symbolically and at t0.
        let mut species: Vec<usize> = Vec::new();
        let mut cols: Vec<HashMap<usize, Vec<Expr>>> = Vec::new();
        for &ri in &fast_rx {
            let r = &m.reactions[ri];
            let mut col: HashMap<usize, Vec<Expr>> = HashMap::new();
            for (product, list, st) in [(false, &r.reactants, &stoich[ri].0), (true, &r.products, &stoich[ri].1)] {
                for (sr, st) in list.iter().zip(st) {
                    let Some(Entity::Species(si)) = l.ids.get(&sr.species).copied() else { continue };
                    if l.setters.get(&sr.species) != Some(&Setter::Reactions) {
                        continue;
                    }
                    let sp = &m.species[si];
                    let mut term = st.clone();
                    if let Some(cf) = sp.conversion_factor.as_ref().or(m.conversion_factor.as_ref()) {
                        if let Some(&c) = syms.get(cf) {
                            term = term * Expr::Sym(c);
                        }
                    }
                    col.entry(si).or_default().push(if product { term } else { -term });
                    if !species.contains(&si) {
                        species.push(si);
                    }
                }
            }
            cols.push(col);
        }
        let n = species.len();
        let nf_expr: Vec<Vec<Expr>> = species
            .iter()
            .map(|si| {
                cols.iter()
                    .map(|c| match c.get(si) {
                        Some(terms) => vht_ir::simplify(Expr::Nary(NaryOp::Add, terms.clone())),
                        None => Expr::Num(0.0),
                    })
                    .collect()
            })
            .collect();
        let nf: Vec<Vec<f64>> = nf_expr.iter().map(|row| row.iter().map(|e| eval(e, &env)).collect()).collect();
        let amounts: Vec<Sym> = species
            .iter()
            .map(|&si| match l.amounts.get(&si) {
                Some(&(a, _)) => a,
                None => syms[&m.species[si].id],
            })
            .collect();

        // Slow rates, then the species become algebraic unknowns.
        let slow: Vec<Expr> = amounts
            .iter()
            .map(|&a| match &l.model.symbol(a).kind {
                SymbolKind::State { rate } => rate.clone(),
                _ => Expr::Num(0.0),
            })
            .collect();
        for &a in &amounts {
            l.model.symbols[a.index()].kind = SymbolKind::Algebraic;
        }

        // Conservation laws: a basis of { l : lᵀ N_f = 0 }. With one fast
        // reaction the basis is written symbolically (l_k = 1, l_p = -n_k/n_p
        // for a pivot p), so stoichiometries that events change (case 01398)
        // keep it right; otherwise it is computed at t0.
        let laws: Vec<Vec<Expr>> = if fast_rx.len() == 1 {
            match (0..n).find(|&p| nf[p][0].abs() > EPS) {
                Some(p) => (0..n)
                    .filter(|&k| k != p)
                    .map(|k| {
                        let mut law = vec![Expr::Num(0.0); n];
                        law[k] = Expr::Num(1.0);
                        law[p] = vht_ir::simplify(-(nf_expr[k][0].clone() / nf_expr[p][0].clone()));
                        law
                    })
                    .collect(),
                None => (0..n).map(|k| (0..n).map(|i| Expr::Num((i == k) as u8 as f64)).collect()).collect(),
            }
        } else {
            let nt: Vec<Vec<f64>> = (0..fast_rx.len()).map(|j| (0..n).map(|i| nf[i][j]).collect()).collect();
            null_space(&nt, n)
                .into_iter()
                .map(|law| law.into_iter().map(|c| Expr::Num(if c.abs() < EPS { 0.0 } else { c })).collect())
                .collect()
        };
        let amount_exprs: Vec<Expr> = amounts.iter().map(|&a| Expr::Sym(a)).collect();
        let mut totals = Vec::new();
        for (k, law) in laws.iter().enumerate() {
            let total = dot(law, &amount_exprs);
            let name = format!("fast_total#{}", k + 1);
            let t = l.model.add(&name, Role::Internal, SymbolKind::State { rate: dot(law, &slow) }, total.clone());
            l.model.algebraic.push(total.clone() - Expr::Sym(t));
            totals.push((t, total));
        }
        // Equilibrium: v_j = 0 for independent fast reactions.
        for j in pivot_columns(&nf) {
            let r = &m.reactions[fast_rx[j]];
            l.model.algebraic.push(Expr::Sym(syms[&r.id]));
        }

        // An event that sets a fast species or a quantity a law reads
        // changes the totals: they are recomputed from the values after it.
        for ev in &mut l.model.events {
            let assigned: HashMap<Sym, Expr> = ev.assignments.iter().map(|a| (a.target, a.value.clone())).collect();
            for (t, total) in &totals {
                if total.symbols().iter().any(|s| assigned.contains_key(s)) {
                    let value = total.clone().substitute(&mut |s| assigned.get(&s).cloned());
                    ev.assignments.push(EventAssignment { target: *t, value });
                }
            }
        }
        Ok(())
    }
}

/// `Σ law_i · x_i`, leaving out zero coefficients and unit factors.
fn dot(law: &[Expr], xs: &[Expr]) -> Expr {
    let terms: Vec<Expr> = law
        .iter()
        .zip(xs)
        .filter(|(c, _)| !c.is_num(0.0))
        .map(|(c, x)| if c.is_num(1.0) { x.clone() } else { c.clone() * x.clone() })
        .collect();
    Expr::Nary(NaryOp::Add, terms)
}

/// The columns of `a` that are linearly independent (pivots of its echelon form).
fn pivot_columns(a: &[Vec<f64>]) -> Vec<usize> {
    let mut a: Vec<Vec<f64>> = a.to_vec();
    let rows = a.len();
    let cols = a.first().map_or(0, Vec::len);
    let mut pivots = Vec::new();
    let mut r = 0;
    for c in 0..cols {
        if r == rows {
            break;
        }
        let Some(p) = (r..rows).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs())) else { break };
        if a[p][c].abs() < EPS {
            continue;
        }
        a.swap(r, p);
        for i in 0..rows {
            if i != r {
                let f = a[i][c] / a[r][c];
                for k in c..cols {
                    a[i][k] -= f * a[r][k];
                }
            }
        }
        pivots.push(c);
        r += 1;
    }
    pivots
}

/// A basis of the null space of `a` (rows of length `n`): one vector per
/// free column of its reduced row echelon form.
fn null_space(a: &[Vec<f64>], n: usize) -> Vec<Vec<f64>> {
    let mut a: Vec<Vec<f64>> = a.to_vec();
    let rows = a.len();
    let mut pivots: Vec<usize> = Vec::new();
    let mut r = 0;
    for c in 0..n {
        if r == rows {
            break;
        }
        let Some(p) = (r..rows).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs())) else { break };
        if a[p][c].abs() < EPS {
            continue;
        }
        a.swap(r, p);
        let d = a[r][c];
        for k in 0..n {
            a[r][k] /= d;
        }
        for i in 0..rows {
            if i != r {
                let f = a[i][c];
                for k in 0..n {
                    a[i][k] -= f * a[r][k];
                }
            }
        }
        pivots.push(c);
        r += 1;
    }
    (0..n)
        .filter(|c| !pivots.contains(c))
        .map(|free| {
            let mut v = vec![0.0; n];
            v[free] = 1.0;
            for (row, &pc) in pivots.iter().enumerate() {
                v[pc] = -a[row][free];
            }
            v
        })
        .collect()
}

struct Values<'a> {
    v: &'a [f64],
}

impl Env for Values<'_> {
    fn value(&self, s: Sym) -> f64 {
        self.v.get(s.index()).copied().unwrap_or(f64::NAN)
    }
    fn time(&self) -> f64 {
        0.0
    }
    fn delayed(&self, expr: &Expr, _t: f64) -> f64 {
        eval(expr, self)
    }
}

/// Every symbol's value at the start (algebraic unknowns at their guesses).
fn initial_values(m: &Model) -> Result<Vec<f64>, vht_ir::OrderError> {
    // rateOf placeholders are not resolved yet: read them as NaN (the
    // ordering must not see symbols outside the model).
    let mut m = m.clone();
    let n = m.symbols.len() as u32;
    let hide = |e: Expr| e.substitute(&mut |s| (s.0 >= n).then_some(Expr::Num(f64::NAN)));
    for sym in &mut m.symbols {
        sym.initial = hide(std::mem::replace(&mut sym.initial, Expr::Num(0.0)));
        if let SymbolKind::Assigned { expr } | SymbolKind::State { rate: expr } = &mut sym.kind {
            *expr = hide(std::mem::replace(expr, Expr::Num(0.0)));
        }
    }
    let m = &m;
    let order = vht_ir::initial_order(m)?;
    let mut v = vec![f64::NAN; m.symbols.len()];
    for s in order {
        let sym = m.symbol(s);
        let e = match &sym.kind {
            SymbolKind::Assigned { expr } => expr,
            _ => &sym.initial,
        };
        v[s.index()] = eval(e, &Values { v: &v });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conservation_of_a_reversible_pair() {
        // A <-> B: one reaction, stoichiometry column (-1, 1).
        let nt = vec![vec![-1.0, 1.0]];
        assert_eq!(null_space(&nt, 2), vec![vec![1.0, 1.0]]);
        assert_eq!(pivot_columns(&[vec![-1.0], vec![1.0]]), vec![0]);
    }

    #[test]
    fn dependent_reactions_count_once() {
        // A -> B twice (two identical fast reactions): rank 1.
        let nf = vec![vec![-1.0, -1.0], vec![1.0, 1.0]];
        assert_eq!(pivot_columns(&nf), vec![0]);
        let nt = vec![vec![-1.0, 1.0], vec![-1.0, 1.0]];
        assert_eq!(null_space(&nt, 2).len(), 1);
    }
}
