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
        let start = without_placeholders(&l.model);
        let mut values = initial_values(&start).map_err(|source| LowerError::Check { file: l.file.clone(), source })?;
        // Other algebraic unknowns can enter the fast rates (case 01567:
        // v = k·S2 with 0 = k + 3): relaxation needs their values, not guesses.
        solve_algebraic(&start, &mut values);
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
        let initial_amounts: Vec<Expr> = amounts.iter().map(|&a| l.model.symbol(a).initial.clone()).collect();
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
            // The totals start from the initial amounts themselves (not the
            // guesses below), so they follow parameters a cohort changes.
            let t0 = vht_ir::simplify(dot(law, &initial_amounts));
            let rate = vht_ir::simplify(dot(law, &slow));
            let t = l.model.add(&name, Role::Internal, SymbolKind::State { rate }, t0);
            l.model.algebraic.push(total.clone() - Expr::Sym(t));
            totals.push((t, total));
        }
        // Equilibrium: v_j = 0 for independent fast reactions.
        for j in pivot_columns(&nf) {
            let r = &m.reactions[fast_rx[j]];
            l.model.algebraic.push(Expr::Sym(syms[&r.id]));
        }

        // First guesses: the equilibrium the fast reactions relax to.
        let fluxes: Vec<Sym> = fast_rx.iter().map(|&ri| syms[&m.reactions[ri].id]).collect();
        let guesses = relaxed(&start, &values, &amounts, &nf, &fluxes);
        for (&s, x) in amounts.iter().zip(guesses) {
            if x.is_finite() {
                l.model.symbols[s.index()].initial = Expr::Num(x);
            }
        }
        let before_start: HashMap<Sym, Expr> = amounts.iter().copied().zip(initial_amounts.iter().cloned()).collect();
        history_before_start(&mut l.model, &before_start);

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

/// The amounts the fast reactions relax to from the start, one group of
/// reactions sharing species at a time (case 01565 has 52 independent
/// pairs: relaxing them jointly would cost a 104² Jacobian per step).
/// Where relaxation fails the amounts are left as they start.
fn relaxed(start: &Model, values: &[f64], amounts: &[Sym], nf: &[Vec<f64>], fluxes: &[Sym]) -> Vec<f64> {
    let mut guesses: Vec<f64> = amounts.iter().map(|a| values[a.index()]).collect();
    let Ok(order) = vht_ir::evaluation_order(start) else { return guesses };
    for (rows, cols) in components(nf) {
        let sub_amounts: Vec<Sym> = rows.iter().map(|&i| amounts[i]).collect();
        let sub_nf: Vec<Vec<f64>> = rows.iter().map(|&i| cols.iter().map(|&j| nf[i][j]).collect()).collect();
        let fluxes: Vec<Sym> = cols.iter().map(|&j| fluxes[j]).collect();
        let order = needed(start, &order, &fluxes);
        let a0: Vec<f64> = rows.iter().map(|&i| guesses[i]).collect();
        if !a0.iter().all(|x| x.is_finite()) {
            continue;
        }
        let mut relaxation =
            Relaxation { model: start, order, values: values.to_vec(), amounts: &sub_amounts, nf: &sub_nf, fluxes };
        if let Some(a) = relaxation.relax(&a0) {
            for (&i, x) in rows.iter().zip(a) {
                guesses[i] = x;
            }
        }
    }
    guesses
}

/// Before the start the model sits at its initial values, and for fast
/// species those are the amounts as given, before the equilibration (case
/// 01539: a delay of a fast species reads 2 at t = 0, not the equilibrium).
/// The guesses above are equilibrium values, so a delayed read that reaches
/// before t = 0 is given the given amounts explicitly:
/// `delay(x, τ)` becomes `piecewise(delay(x, τ) if t - τ ≥ 0, x at the start)`.
fn history_before_start(model: &mut Model, start: &HashMap<Sym, Expr>) {
    let n = model.symbols.len();
    // Assigned symbols whose value depends on a fast amount, with their definitions.
    let mut defs: HashMap<Sym, Expr> = HashMap::new();
    if let Ok(order) = vht_ir::evaluation_order(&without_placeholders(model)) {
        for s in order {
            if let SymbolKind::Assigned { expr } = &model.symbol(s).kind {
                if expr.instant_symbols().iter().any(|d| start.contains_key(d) || defs.contains_key(d)) {
                    defs.insert(s, expr.clone());
                }
            }
        }
    }
    fn at_start(e: &Expr, start: &HashMap<Sym, Expr>, defs: &HashMap<Sym, Expr>, depth: usize) -> Expr {
        e.clone().substitute(&mut |s| match (start.get(&s), defs.get(&s)) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(d)) if depth < 64 => Some(at_start(d, start, defs, depth + 1)),
            _ => None,
        })
    }
    let reads_fast =
        |x: &Expr| x.symbols().iter().any(|s| s.index() < n && (start.contains_key(s) || defs.contains_key(s)));
    let mut rewrite = |e: Expr| -> Expr {
        e.map(&mut |node| match node {
            Expr::Delay(x, tau) if reads_fast(&x) => {
                let given = at_start(&x, start, &defs, 0);
                let started = Expr::bin(vht_ir::BinOp::Ge, Expr::Time - (*tau).clone(), Expr::Num(0.0));
                Expr::Piecewise(vec![(Expr::Delay(x, tau), started)], Box::new(given))
            }
            other => other,
        })
    };
    for sym in &mut model.symbols {
        sym.initial = rewrite(std::mem::replace(&mut sym.initial, Expr::Num(0.0)));
        if let SymbolKind::Assigned { expr } | SymbolKind::State { rate: expr } = &mut sym.kind {
            *expr = rewrite(std::mem::replace(expr, Expr::Num(0.0)));
        }
    }
    for g in &mut model.algebraic {
        *g = rewrite(std::mem::replace(g, Expr::Num(0.0)));
    }
    for ev in &mut model.events {
        ev.trigger = rewrite(std::mem::replace(&mut ev.trigger, Expr::Num(0.0)));
        ev.delay = ev.delay.take().map(&mut rewrite);
        ev.priority = ev.priority.take().map(&mut rewrite);
        for a in &mut ev.assignments {
            a.value = rewrite(std::mem::replace(&mut a.value, Expr::Num(0.0)));
        }
    }
}

/// Groups of species (rows) and fast reactions (columns) connected through
/// nonzero stoichiometries.
// Row operations on small dense matrices read best with indices.
#[allow(clippy::needless_range_loop)]
fn components(nf: &[Vec<f64>]) -> Vec<(Vec<usize>, Vec<usize>)> {
    let n = nf.len();
    let m = nf.first().map_or(0, Vec::len);
    let mut group: Vec<usize> = (0..n).collect();
    fn root(g: &mut [usize], mut i: usize) -> usize {
        while g[i] != i {
            g[i] = g[g[i]];
            i = g[i];
        }
        i
    }
    for j in 0..m {
        let rows: Vec<usize> = (0..n).filter(|&i| nf[i][j].abs() > EPS).collect();
        for w in rows.windows(2) {
            let (a, b) = (root(&mut group, w[0]), root(&mut group, w[1]));
            group[a] = b;
        }
    }
    let mut out: Vec<(usize, Vec<usize>, Vec<usize>)> = Vec::new();
    for i in 0..n {
        let r = root(&mut group, i);
        match out.iter_mut().find(|(g, _, _)| *g == r) {
            Some((_, rows, _)) => rows.push(i),
            None => out.push((r, vec![i], Vec::new())),
        }
    }
    for j in 0..m {
        if let Some(i) = (0..n).find(|&i| nf[i][j].abs() > EPS) {
            let r = root(&mut group, i);
            if let Some((_, _, cols)) = out.iter_mut().find(|(g, _, _)| *g == r) {
                cols.push(j);
            }
        }
    }
    out.into_iter().map(|(_, rows, cols)| (rows, cols)).collect()
}

/// The assigned symbols (in evaluation order) that `targets` depend on.
fn needed(m: &Model, order: &[Sym], targets: &[Sym]) -> Vec<Sym> {
    let mut need = vec![false; m.symbols.len()];
    let mut stack: Vec<Sym> = targets.to_vec();
    while let Some(s) = stack.pop() {
        if need[s.index()] {
            continue;
        }
        need[s.index()] = true;
        if let SymbolKind::Assigned { expr } = &m.symbol(s).kind {
            stack.extend(expr.instant_symbols().into_iter().filter(|d| d.index() < need.len()));
        }
    }
    order.iter().copied().filter(|s| need[s.index()]).collect()
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
// Row operations on small dense matrices read best with indices.
#[allow(clippy::needless_range_loop)]
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
// Row operations on small dense matrices read best with indices.
#[allow(clippy::needless_range_loop)]
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

/// A copy of the model where the rateOf placeholders, not resolved yet,
/// read as NaN (the orderings must not see symbols outside the model).
fn without_placeholders(m: &Model) -> Model {
    let mut m = m.clone();
    let n = m.symbols.len() as u32;
    let hide = |e: Expr| e.substitute(&mut |s| (s.0 >= n).then_some(Expr::Num(f64::NAN)));
    for sym in &mut m.symbols {
        sym.initial = hide(std::mem::replace(&mut sym.initial, Expr::Num(0.0)));
        if let SymbolKind::Assigned { expr } | SymbolKind::State { rate: expr } = &mut sym.kind {
            *expr = hide(std::mem::replace(expr, Expr::Num(0.0)));
        }
    }
    m
}

/// Every symbol's value at the start (algebraic unknowns at their guesses).
fn initial_values(m: &Model) -> Result<Vec<f64>, vht_ir::OrderError> {
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

/// Solves the model's algebraic equations for its unknowns at the start
/// (damped Newton with finite differences, Levenberg-Marquardt steps where
/// the Jacobian is singular), other values held. Best effort: this only
/// improves first guesses, so failure leaves `v` as it was.
fn solve_algebraic(m: &Model, v: &mut [f64]) {
    let unknowns = m.algebraic_unknowns();
    let n = unknowns.len();
    if n == 0 || n != m.algebraic.len() {
        return;
    }
    let Ok(order) = vht_ir::evaluation_order(m) else { return };
    let residuals = |v: &mut [f64]| -> Vec<f64> {
        for &s in &order {
            if let SymbolKind::Assigned { expr } = &m.symbol(s).kind {
                v[s.index()] = eval(expr, &Values { v });
            }
        }
        m.algebraic.iter().map(|g| eval(g, &Values { v })).collect()
    };
    let norm = |g: &[f64]| g.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let saved = v.to_vec();
    let mut g = residuals(v);
    for _ in 0..50 {
        if !g.iter().all(|x| x.is_finite()) {
            break;
        }
        if norm(&g) < 1e-12 {
            return;
        }
        let mut jac = vec![vec![0.0; n]; n];
        for (j, &u) in unknowns.iter().enumerate() {
            let x = v[u.index()];
            let h = 1e-7 * x.abs().max(1.0);
            v[u.index()] = x + h;
            let gp = residuals(v);
            v[u.index()] = x;
            for i in 0..n {
                jac[i][j] = (gp[i] - g[i]) / h;
            }
        }
        // (JᵀJ + λI) dx = -Jᵀg: Newton's step as λ → 0, defined when J is singular.
        let mut a = vec![vec![0.0; n + 1]; n];
        for i in 0..n {
            for j in 0..n {
                a[i][j] = (0..n).map(|k| jac[k][i] * jac[k][j]).sum::<f64>() + if i == j { 1e-10 } else { 0.0 };
            }
            a[i][n] = -(0..n).map(|k| jac[k][i] * g[k]).sum::<f64>();
        }
        let Some(dx) = solve_dense(a) else { break };
        let before = norm(&g);
        let mut lambda = 1.0;
        loop {
            for (j, &u) in unknowns.iter().enumerate() {
                v[u.index()] += lambda * dx[j];
            }
            let trial = residuals(v);
            if norm(&trial) <= before || lambda < 1e-3 {
                g = trial;
                break;
            }
            for (j, &u) in unknowns.iter().enumerate() {
                v[u.index()] -= lambda * dx[j];
            }
            lambda *= 0.5;
        }
    }
    let residual = norm(&g);
    if residual.is_nan() || residual >= 1e-6 {
        v.copy_from_slice(&saved);
    }
}

/// The fast subsystem `da/dt = N_f · v(a)` at the start, for relaxation.
struct Relaxation<'a> {
    model: &'a Model,
    order: Vec<Sym>,
    values: Vec<f64>,
    amounts: &'a [Sym],
    nf: &'a [Vec<f64>],
    fluxes: Vec<Sym>,
}

impl Relaxation<'_> {
    fn f(&mut self, a: &[f64]) -> Vec<f64> {
        for (k, &s) in self.amounts.iter().enumerate() {
            self.values[s.index()] = a[k];
        }
        for &s in &self.order {
            if let SymbolKind::Assigned { expr } = &self.model.symbol(s).kind {
                self.values[s.index()] = eval(expr, &Values { v: &self.values });
            }
        }
        let v: Vec<f64> = self.fluxes.iter().map(|s| self.values[s.index()]).collect();
        self.nf.iter().map(|row| row.iter().zip(&v).map(|(n, v)| n * v).sum()).collect()
    }

    /// Pseudo-transient continuation: backward Euler steps of growing size
    /// from the initial amounts. It follows the fast dynamics, so where the
    /// equilibrium has several roots (v = k·A·B) it ends at the one the
    /// reactions run to, which a Newton solve from the start need not find.
    fn relax(&mut self, a0: &[f64]) -> Option<Vec<f64>> {
        let n = a0.len();
        let norm = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let scale = norm(a0).max(1e-300);
        let mut a = a0.to_vec();
        let mut f = self.f(&a);
        if !f.iter().all(|x| x.is_finite()) {
            return None;
        }
        let mut fnorm = norm(&f);
        if fnorm == 0.0 {
            return Some(a);
        }
        let mut dt = 1e-3 * scale / fnorm;
        let f0 = fnorm;
        for _ in 0..400 {
            if fnorm <= 1e-13 * f0 || dt > 1e15 {
                break;
            }
            // (I - dt J) Δ = dt f, with J by finite differences.
            let mut m = vec![vec![0.0; n + 1]; n];
            for j in 0..n {
                let h = 1e-7 * a[j].abs().max(1e-7 * scale);
                let mut ah = a.clone();
                ah[j] += h;
                let fh = self.f(&ah);
                for i in 0..n {
                    m[i][j] = -dt * (fh[i] - f[i]) / h;
                }
                m[j][j] += 1.0;
            }
            for i in 0..n {
                m[i][n] = dt * f[i];
            }
            // A step may change no amount by more than half its size: a
            // Newton-like jump could land on another root (x(5 - x) = 0 from
            // x = 2 jumps to -4, then 0, though the reaction runs to 5).
            let step =
                solve_dense(m).filter(|d| d.iter().zip(&a).all(|(d, x)| d.abs() <= 0.5 * (x.abs() + 1e-3 * scale)));
            let trial: Option<Vec<f64>> = step.map(|d| a.iter().zip(d).map(|(x, d)| x + d).collect());
            let f_trial = trial.as_ref().map(|t| self.f(t));
            match (trial, f_trial) {
                (Some(t), Some(ft)) if t.iter().chain(&ft).all(|x| x.is_finite()) => {
                    let ftn = norm(&ft);
                    // Grow the step as the residual falls (switched evolution
                    // relaxation), and at least twofold: a linear approach to
                    // equilibrium falls only by 1 + λ·dt per step.
                    dt *= (2.0 * fnorm / ftn.max(1e-300)).clamp(2.0, 10.0);
                    a = t;
                    f = ft;
                    fnorm = ftn;
                }
                _ => dt *= 0.25,
            }
        }
        Some(a)
    }
}

/// Solves the square system of an augmented matrix `[A | b]` (rows), by LU.
fn solve_dense(a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = a.len();
    let m = nalgebra::DMatrix::from_fn(n, n, |i, j| a[i][j]);
    let b = nalgebra::DVector::from_fn(n, |i, _| a[i][n]);
    m.lu().solve(&b).map(|x| x.iter().copied().collect())
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
