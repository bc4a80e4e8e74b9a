//! Steady states by Newton's method, with their sensitivities by the
//! implicit function theorem.
//!
//! A steady state is first approached by simulation (`Objective::run_on` on a
//! geometric grid of times), which stops at the first grid point where the
//! state has nearly stopped moving. Which grid point that is changes with the
//! parameters in steps, so an objective read there is a step function of the
//! parameters at the level of the stopping criterion. Newton's method on
//! `f(x) = 0` from that point removes the steps: the polished state is the
//! steady state itself, a smooth function of the parameters.
//!
//! A model with conserved moieties (`l^T f(x) = 0` for every `x`) has a
//! singular Jacobian, and a continuum of steady states, one per value of the
//! moiety totals `l^T x`. The right one is in the class the simulation stayed
//! in (the totals come from the initial values), so Newton steps are taken in
//! the range of `J` only: its orthogonal complement is spanned by the left
//! null vectors, read from a singular value decomposition at the starting
//! point.
//!
//! Sensitivities: differentiating `f(x(p), p) = 0` gives `J s = -df/dp` in
//! the range of `J`, and the totals `l^T s` (conserved along the run as
//! `l^T x` is, and dependent on `p` through the initial values) are those
//! the simulated tangents carry.
//!
//! The polish is only accepted when Newton converges to a point whose
//! weighted state derivative is below the steady-state tolerances, near the
//! simulated point, at which the reduced Jacobian is stable; otherwise the
//! caller keeps the simulated point (the fallback).

use nalgebra::{DMatrix, DVector};
use vht_codegen::{compile_exprs, Function, NoDelays};
use vht_ir::Expr;
use vht_sim::{Column, Outputs, Simulator};

use crate::objective::SteadyState;
use crate::FitError;

/// Output columns for runs that end at a steady state: the caller's columns
/// followed by a snapshot of the run's state vector `y` and parameter
/// vector `p`, so a row can be re-evaluated at a polished state.
pub(crate) struct SteadyOutputs {
    pub(crate) outputs: Outputs,
    function: Function,
    n_cols: usize,
    n_y: usize,
    n_p: usize,
}

impl SteadyOutputs {
    pub(crate) fn new(sim: &Simulator, columns: &[Column], file: &std::path::Path) -> Result<SteadyOutputs, FitError> {
        let layout = &sim.code.layout;
        let mut all = columns.to_vec();
        for (prefix, syms) in [("y", &layout.y), ("p", &layout.p)] {
            for &s in syms.iter() {
                all.push(Column { name: format!("{prefix}:{}", sim.model.name(s)), expr: Expr::Sym(s) });
            }
        }
        let outputs = sim.outputs(&all).map_err(|error| FitError::Outputs { file: file.to_path_buf(), error })?;
        let exprs: Vec<Expr> = all.iter().map(|c| c.expr.clone()).collect();
        let function = compile_exprs(&sim.model, layout, &exprs, &vht_codegen::Options::default())
            .map_err(|e| FitError::Build { file: file.to_path_buf(), error: e.into() })?;
        Ok(SteadyOutputs { outputs, function, n_cols: columns.len(), n_y: layout.y.len(), n_p: layout.p.len() })
    }

    /// The run's `y` and `p` at an output row.
    pub(crate) fn split<'r>(&self, row: &'r [f64]) -> (&'r [f64], &'r [f64]) {
        let y0 = self.n_cols;
        let p0 = y0 + self.n_y;
        (&row[y0..p0], &row[p0..p0 + self.n_p])
    }

    /// The output row at `(t, y, p)`.
    pub(crate) fn row(&self, t: f64, y: &[f64], p: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.function.len()];
        self.function.eval(t, y, p, &mut out, &NoDelays);
        out
    }
}

/// A steady state found by Newton's method, with what its sensitivities need.
pub(crate) struct Steady {
    pub(crate) x: Vec<f64>,
    /// The Jacobian at `x`.
    jac: DMatrix<f64>,
    /// Orthonormal bases of the range of `J` and of its complement (the
    /// conservation laws).
    range: DMatrix<f64>,
    null: DMatrix<f64>,
    /// LU of `range^T J range`, the Jacobian reduced to the moiety class.
    reduced: nalgebra::LU<f64, nalgebra::Dyn, nalgebra::Dyn>,
}

/// Weighted root-mean-square of a state derivative (AMICI's criterion, as
/// the simulated steady state uses).
pub(crate) fn weighted_norm(ss: &SteadyState, x: &[f64], f: &[f64]) -> f64 {
    let n = x.len().max(1) as f64;
    let sum: f64 = x.iter().zip(f).map(|(x, f)| (f / (ss.atol + ss.rtol * x.abs())).powi(2)).sum();
    (sum / n).sqrt()
}

/// Newton's method on the ODE states of `sim` (no algebraic unknowns) at
/// fixed parameters `p` and time `t`, from `x0`. `None` where it does not
/// converge to an acceptable steady state (see the module documentation).
pub(crate) fn newton(sim: &Simulator, t: f64, x0: &[f64], p: &[f64], ss: &SteadyState) -> Option<Steady> {
    let n = sim.code.layout.n_ode;
    if n == 0 || sim.n_y() != n || x0.len() != n || p.len() != sim.code.layout.p.len() {
        return None;
    }
    let mut f = vec![0.0; sim.code.rhs.len()];
    let mut jv = vec![0.0; sim.code.jac.len()];
    let jac_at = |x: &[f64], jv: &mut [f64]| -> DMatrix<f64> {
        sim.code.jac.eval(t, x, p, jv, &NoDelays);
        let mut j = DMatrix::zeros(n, n);
        for (k, &(r, c)) in sim.code.jac_pattern.iter().enumerate() {
            if r < n && c < n {
                j[(r, c)] += jv[k];
            }
        }
        j
    };
    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());

    let mut x = x0.to_vec();
    let j0 = jac_at(&x, &mut jv);
    if !j0.iter().all(|v| v.is_finite()) {
        return None;
    }
    let (range, null) = range_and_null(&j0)?;
    let norm_at = |x: &[f64], f: &mut [f64]| -> f64 {
        sim.code.rhs.eval(t, x, p, f, &NoDelays);
        if finite(f) {
            weighted_norm(ss, x, &f[..n])
        } else {
            f64::INFINITY
        }
    };
    let mut norm = norm_at(&x, &mut f);
    let mut converged = false;
    let mut trial = vec![0.0; n];
    for _ in 0..50 {
        if !norm.is_finite() {
            return None;
        }
        let j = jac_at(&x, &mut jv);
        let reduced = range.transpose() * &j * &range;
        let rhs = -(range.transpose() * DVector::from_column_slice(&f[..n]));
        let a = reduced.lu().solve(&rhs)?;
        let dx = &range * a;
        // Damped: halve while the residual grows (a full step from a point
        // this close normally converges at once).
        let mut lambda = 1.0;
        let mut trial_norm;
        loop {
            for i in 0..n {
                trial[i] = x[i] + lambda * dx[i];
            }
            trial_norm = norm_at(&trial, &mut f);
            if trial_norm <= norm || lambda < 1e-3 {
                break;
            }
            lambda *= 0.5;
        }
        let step_small =
            (0..n).all(|i| (lambda * dx[i]).abs() <= 1e-6 * (ss.atol + ss.rtol * x[i].abs()) + 1e-15 * x[i].abs());
        let stalled = trial_norm >= norm;
        if stalled {
            // Rounding level: the last point is as good as it gets.
            norm_at(&x, &mut f);
            converged = true;
            break;
        }
        x.copy_from_slice(&trial);
        norm = trial_norm;
        if step_small {
            converged = true;
            break;
        }
    }
    // (NaN fails this too.)
    let small = norm < 1.0;
    if !converged || !small {
        return None;
    }
    // Near the simulated point, and no sign change of a state that was not negative.
    let scale = x0.iter().fold(ss.atol, |m, v| m.max(v.abs()));
    for (a, b) in x0.iter().zip(&x) {
        if (a - b).abs() > 0.1 * scale || (*a >= 0.0 && *b < -1e-6 * scale) {
            return None;
        }
    }
    let jac = jac_at(&x, &mut jv);
    let reduced = range.transpose() * &jac * &range;
    // A stable steady state: the simulation would not have come to rest at an unstable one.
    // (A bounded Schur decomposition: nalgebra's `complex_eigenvalues`
    // iterates without limit and unwraps.)
    if !reduced.iter().all(|v| v.is_finite()) {
        return None;
    }
    let smax = reduced.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if reduced.nrows() > 0 {
        let schur = nalgebra::Schur::try_new(reduced.clone(), f64::EPSILON, 10_000)?;
        if schur.complex_eigenvalues().iter().any(|e| e.re > 1e-10 * smax) {
            return None;
        }
    }
    let reduced = reduced.lu();
    if !reduced.is_invertible() {
        return None;
    }
    Some(Steady { x, jac, range, null, reduced })
}

impl Steady {
    /// The steady state's sensitivity to one parameter direction: `fp` is
    /// `df/dp` at the steady state, `s_now` the simulated tangent (its
    /// conserved totals are kept).
    pub(crate) fn tangent(&self, fp: &[f64], s_now: &[f64]) -> Option<Vec<f64>> {
        let c = self.null.transpose() * DVector::from_column_slice(s_now);
        let fixed = &self.null * &c;
        let rhs = -(self.range.transpose() * (DVector::from_column_slice(fp) + &self.jac * &fixed));
        let a = self.reduced.solve(&rhs)?;
        let s = &self.range * a + fixed;
        s.iter().all(|v| v.is_finite()).then(|| s.iter().copied().collect())
    }
}

/// Orthonormal bases of the range of `j` and of its orthogonal complement
/// (the left null space), splitting the singular values at a relative 1e-10:
/// conservation laws give singular values at rounding level, while a slow
/// mode mistaken for one leaves a residual that fails the acceptance test.
fn range_and_null(j: &DMatrix<f64>) -> Option<(DMatrix<f64>, DMatrix<f64>)> {
    let n = j.nrows();
    let svd = j.clone().svd(true, false);
    let u = svd.u?;
    let smax = svd.singular_values.iter().fold(0.0f64, |m, s| m.max(*s));
    if smax == 0.0 || !smax.is_finite() {
        return None;
    }
    let (mut r, mut l) = (Vec::new(), Vec::new());
    for (i, &s) in svd.singular_values.iter().enumerate() {
        if s > 1e-10 * smax {
            r.push(u.column(i).into_owned());
        } else {
            l.push(u.column(i).into_owned());
        }
    }
    let basis = |cols: &[DVector<f64>]| {
        if cols.is_empty() {
            DMatrix::zeros(n, 0)
        } else {
            DMatrix::from_columns(cols)
        }
    };
    Some((basis(&r), basis(&l)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vht_ir::{Model, Role, SymbolKind};

    /// A <-> B with A + B conserved, plus C produced and degraded.
    fn model() -> Simulator {
        let mut m = Model::default();
        let k1 = m.add("k1", Role::Internal, SymbolKind::Parameter, Expr::Num(2.0));
        let k2 = m.add("k2", Role::Internal, SymbolKind::Parameter, Expr::Num(1.0));
        let a = m.add("A", Role::Internal, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(3.0));
        let b = m.add("B", Role::Internal, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(0.0));
        let c = m.add("C", Role::Internal, SymbolKind::State { rate: Expr::Num(0.0) }, Expr::Num(0.0));
        let flux = Expr::Sym(k1) * Expr::Sym(a) - Expr::Sym(k2) * Expr::Sym(b);
        m.symbols[a.index()].kind = SymbolKind::State { rate: Expr::Num(0.0) - flux.clone() };
        m.symbols[b.index()].kind = SymbolKind::State { rate: flux };
        m.symbols[c.index()].kind = SymbolKind::State { rate: Expr::Sym(k1) - Expr::Sym(c) * Expr::Sym(c) };
        Simulator::new(m, &vht_codegen::Options::default()).expect("compiles")
    }

    #[test]
    fn newton_keeps_the_conserved_total() {
        let sim = model();
        let ss = SteadyState::default();
        // Off the steady state, with A + B = 3: the steady state there is A = 1, B = 2, C = sqrt(2).
        let s = newton(&sim, 0.0, &[1.1, 1.9, 1.3], &[2.0, 1.0], &ss).expect("converges");
        assert!((s.x[0] - 1.0).abs() < 1e-12 && (s.x[1] - 2.0).abs() < 1e-12, "{:?}", s.x);
        assert!((s.x[2] - 2f64.sqrt()).abs() < 1e-12, "{:?}", s.x);
        // d/dk1 with the total fixed (s_now has A + B sensitivity 0):
        // A = 3 k2 / (k1 + k2): dA/dk1 = -3 k2 / (k1 + k2)^2 = -1/3; C = sqrt(k1): dC/dk1 = 1 / (2 sqrt 2).
        let (a, b) = (s.x[0], s.x[1]);
        let fp = [-a, a, 1.0];
        let t = s.tangent(&fp, &[0.5, -0.5, 7.0]).expect("solves");
        assert!((t[0] + 1.0 / 3.0).abs() < 1e-12 && (t[1] - 1.0 / 3.0).abs() < 1e-12, "{t:?}");
        assert!((t[2] - 1.0 / (2.0 * 2f64.sqrt())).abs() < 1e-12, "{t:?}");
        // The total's sensitivity comes from the simulated tangent: d(A+B) = 1 splits 1:2.
        let t = s.tangent(&[0.0, 0.0, 0.0], &[1.0, 0.0, 0.0]).expect("solves");
        assert!((t[0] - 1.0 / 3.0).abs() < 1e-12 && (t[1] - 2.0 / 3.0).abs() < 1e-12, "{t:?} b={b}");
    }

    #[test]
    fn an_unstable_or_distant_point_is_refused() {
        let sim = model();
        let ss = SteadyState::default();
        // From C < 0 Newton goes to C = -sqrt(2), which is unstable (and a sign change).
        assert!(newton(&sim, 0.0, &[1.0, 2.0, -1.3], &[2.0, 1.0], &ss).is_none());
    }
}
