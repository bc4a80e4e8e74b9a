//! Bound-constrained local optimisers on a smooth function with a
//! gradient: a trust-region method on a (Gauss-Newton) Hessian in the style
//! of Fides, and a projected L-BFGS (L-BFGS-B-like).
//!
//! Both work on any [`Smooth`] function, so that they are tested on
//! functions with known minima (Rosenbrock) independently of PEtab.
//!
//! Trust region (one iteration):
//! 1. variables at a bound whose gradient pushes outward are held;
//! 2. the trust-region subproblem `min g^T p + p^T H p / 2, |p| <= Delta`
//!    is solved exactly on the free variables (eigen-decomposition of `H`,
//!    secular equation for the multiplier, the "hard case" by adding the
//!    eigenvector of the smallest eigenvalue), as Fides' `full` subspace;
//! 3. the step is made feasible in three ways, and the one whose quadratic
//!    model predicts the largest decrease is taken: truncated at the first
//!    bound (Fides' truncated step), reflected at that bound for the rest of
//!    its length (Fides' reflective step), and projected onto the box; plus
//!    the projected Cauchy step as a safeguard;
//! 4. the usual ratio test accepts or rejects it and adapts `Delta`.
//!
//! A point where the function cannot be evaluated (the simulation fails)
//! counts as an infinitely bad trial: the step is rejected and the region
//! shrinks.

use nalgebra::{DMatrix, DVector};

/// A function to minimise.
pub trait Smooth: Sync {
    /// The value, or `None` where it cannot be computed.
    fn value(&self, x: &[f64]) -> Option<f64>;
    /// Value, gradient and a symmetric positive semi-definite Hessian
    /// approximation (for the trust region; L-BFGS ignores it).
    fn value_gradient(&self, x: &[f64]) -> Option<(f64, Vec<f64>, Vec<Vec<f64>>)>;
}

/// Why a local optimisation stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// A convergence test was met (which one is in the text).
    Converged(&'static str),
    MaxIterations,
    /// The starting point could not be evaluated.
    Failed(String),
}

/// Convergence settings (Fides' defaults where they exist).
#[derive(Clone, Debug)]
pub struct Tolerances {
    pub max_iterations: usize,
    /// Stop when an accepted step lowers the value by less than this.
    pub fatol: f64,
    /// Stop when the projected gradient's largest entry is below this.
    pub gatol: f64,
    /// Stop when the trust region (or the line search step) shrinks below this.
    pub xtol: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances { max_iterations: 1000, fatol: 1e-6, gatol: 1e-6, xtol: 1e-10 }
    }
}

/// The result of one local optimisation.
#[derive(Clone, Debug)]
pub struct Local {
    pub x: Vec<f64>,
    pub fval: f64,
    pub iterations: usize,
    /// Function evaluations (value only, or with gradient).
    pub evaluations: usize,
    /// Trial points where the function could not be computed (each one
    /// rejected the step and shrank the trust region / line-search step).
    pub failed_trials: usize,
    pub stop: Stop,
}

impl Local {
    /// The result of a local optimisation whose start point cannot be
    /// evaluated (`fval` NaN) or is not finite.
    fn failed_at_start(x: Vec<f64>, fval: f64, why: &str) -> Local {
        Local { x, fval, iterations: 0, evaluations: 1, failed_trials: 0, stop: Stop::Failed(why.into()) }
    }
}

fn clip(x: &mut [f64], lb: &[f64], ub: &[f64]) {
    for i in 0..x.len() {
        x[i] = x[i].clamp(lb[i], ub[i]);
    }
}

/// The largest entry of the gradient projected on the box (what is left of
/// a steepest-descent step that stays inside).
pub fn projected_gradient_norm(x: &[f64], g: &[f64], lb: &[f64], ub: &[f64]) -> f64 {
    (0..x.len())
        .map(|i| {
            let moved = (x[i] - g[i]).clamp(lb[i], ub[i]);
            (x[i] - moved).abs()
        })
        .fold(0.0, f64::max)
}

fn quad(g: &DVector<f64>, h: &DMatrix<f64>, s: &DVector<f64>) -> f64 {
    g.dot(s) + 0.5 * s.dot(&(h * s))
}

/// Exact solution of `min g^T p + p^T H p / 2` subject to `|p| <= delta`.
fn tr_subproblem(g: &DVector<f64>, h: &DMatrix<f64>, delta: f64) -> DVector<f64> {
    let n = g.len();
    let eig = h.clone().symmetric_eigen();
    let q = &eig.eigenvectors;
    let lam = &eig.eigenvalues;
    let gq = q.transpose() * g;
    let lmin = lam.iter().cloned().fold(f64::INFINITY, f64::min);
    let step = |mu: f64| -> DVector<f64> {
        let c = DVector::from_iterator(n, (0..n).map(|i| -gq[i] / (lam[i] + mu)));
        q * c
    };
    // Interior Newton step when H is positive definite and the step fits.
    let scale = lam.iter().fold(0.0f64, |a, &b| a.max(b.abs())).max(1e-300);
    if lmin > 1e-12 * scale {
        let p = step(0.0);
        if p.norm() <= delta {
            return p;
        }
    }
    // |p(mu)| = delta for mu > max(0, -lmin): bisection on a bracket, then
    // Newton on 1/|p| - 1/delta (near linear in mu).
    let lo0 = (-lmin).max(0.0);
    let norm_at = |mu: f64| -> f64 { (0..n).map(|i| (gq[i] / (lam[i] + mu)).powi(2)).sum::<f64>().sqrt() };
    let mut lo = lo0 + 1e-14 * scale.max(1.0);
    if norm_at(lo) <= delta {
        // The hard case: the gradient has (almost) no component along the
        // lowest eigenvectors; go along one of them to the boundary.
        let mut p = step(lo);
        let imin = (0..n).min_by(|&a, &b| lam[a].total_cmp(&lam[b])).unwrap_or(0);
        let z = q.column(imin).into_owned();
        let (pz, pp) = (p.dot(&z), p.dot(&p));
        let disc = pz * pz + delta * delta - pp;
        let tau = -pz + disc.max(0.0).sqrt();
        p += z * tau;
        return p;
    }
    let mut hi = lo.max(1.0);
    while norm_at(hi) > delta {
        hi *= 2.0;
        if hi > 1e300 {
            break;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if norm_at(mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    step(hi)
}

/// The trust-region optimiser (see the module documentation).
pub fn trust_region(f: &dyn Smooth, x0: &[f64], lb: &[f64], ub: &[f64], tol: &Tolerances) -> Local {
    let n = x0.len();
    let mut x = x0.to_vec();
    clip(&mut x, lb, ub);
    let mut evaluations = 1;
    let Some((mut fx, mut g, mut hm)) = f.value_gradient(&x) else {
        return Local::failed_at_start(x, f64::NAN, "at the start");
    };
    if !fx.is_finite() {
        return Local::failed_at_start(x, fx, "not finite at the start");
    }
    let mut delta = 1.0;
    let mut iterations = 0;
    let mut failed_trials = 0;
    let mut last_trial_failed = false;
    let stop = loop {
        if projected_gradient_norm(&x, &g, lb, ub) < tol.gatol {
            break Stop::Converged("projected gradient below gatol");
        }
        if iterations >= tol.max_iterations {
            break Stop::MaxIterations;
        }
        if delta < tol.xtol {
            break Stop::Converged(if last_trial_failed {
                "trust region below xtol after failed trial points"
            } else {
                "trust region below xtol"
            });
        }
        iterations += 1;
        // Free variables: not at a bound the gradient pushes against.
        let free: Vec<usize> =
            (0..n).filter(|&i| !((x[i] <= lb[i] && g[i] > 0.0) || (x[i] >= ub[i] && g[i] < 0.0))).collect();
        let gd = DVector::from_vec(g.clone());
        let hd = DMatrix::from_fn(n, n, |a, b| hm[a][b]);
        let gf = DVector::from_iterator(free.len(), free.iter().map(|&i| g[i]));
        let hf = DMatrix::from_fn(free.len(), free.len(), |a, b| hm[free[a]][free[b]]);
        let pf = if free.is_empty() { DVector::zeros(0) } else { tr_subproblem(&gf, &hf, delta) };
        let mut p = DVector::zeros(n);
        for (k, &i) in free.iter().enumerate() {
            p[i] = pf[k];
        }

        let mut candidates: Vec<DVector<f64>> = Vec::new();
        // Truncated at the first bound, then reflected there.
        let (alpha, hit) = first_bound(&x, &p, lb, ub);
        if alpha >= 1.0 {
            candidates.push(p.clone());
        } else {
            let trunc = &p * alpha;
            candidates.push(trunc.clone());
            if let Some(i) = hit {
                let mut rest = &p * (1.0 - alpha);
                rest[i] = -rest[i];
                let xt: Vec<f64> = (0..n).map(|k| x[k] + trunc[k]).collect();
                let (beta, _) = first_bound(&xt, &rest, lb, ub);
                candidates.push(&trunc + rest * beta.min(1.0));
            }
        }
        // Projected onto the box.
        let mut xp: Vec<f64> = (0..n).map(|i| x[i] + p[i]).collect();
        clip(&mut xp, lb, ub);
        candidates.push(DVector::from_iterator(n, (0..n).map(|i| xp[i] - x[i])));
        // Projected Cauchy step: the model's minimum along -g within the region.
        let gn = gd.norm();
        if gn > 0.0 {
            let curv = gd.dot(&(&hd * &gd));
            let t = if curv > 0.0 { (gn * gn / curv).min(delta / gn) } else { delta / gn };
            let mut xc: Vec<f64> = (0..n).map(|i| x[i] - t * g[i]).collect();
            clip(&mut xc, lb, ub);
            candidates.push(DVector::from_iterator(n, (0..n).map(|i| xc[i] - x[i])));
        }
        let (s, pred) = candidates
            .into_iter()
            .map(|s| {
                let q = quad(&gd, &hd, &s);
                (s, q)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least the projected step");
        let snorm = s.norm();
        if pred.is_nan() || pred >= 0.0 || snorm == 0.0 {
            // No model decrease left inside the box (e.g. a singular Hessian
            // with a tiny gradient): treat as converged.
            break Stop::Converged("no predicted decrease");
        }
        let mut xn: Vec<f64> = (0..n).map(|i| x[i] + s[i]).collect();
        clip(&mut xn, lb, ub);
        evaluations += 1;
        let fnew = f.value(&xn).filter(|v| v.is_finite());
        failed_trials += usize::from(fnew.is_none());
        last_trial_failed = fnew.is_none();
        let rho = match fnew {
            Some(fv) => (fv - fx) / pred,
            None => -1.0,
        };
        let delta_iter = delta;
        if rho < 0.25 {
            delta = 0.25 * snorm.min(delta);
        } else if rho > 0.75 && snorm > 0.9 * delta {
            delta *= 2.0;
        }
        if rho > 1e-4 {
            let Some(fv) = fnew else { unreachable!("rho > 0 needs a value") };
            evaluations += 1;
            match f.value_gradient(&xn) {
                Some((f2, g2, h2)) if f2.is_finite() => {
                    let df = fx - fv;
                    x = xn;
                    fx = f2;
                    g = g2;
                    hm = h2;
                    if df < tol.fatol {
                        break Stop::Converged("objective change below fatol");
                    }
                }
                _ => {
                    last_trial_failed = true;
                    // No gradient there (on Fujita: the sensitivity system
                    // fails where the model alone runs): a failed trial
                    // point like any other, whatever its value promised.
                    failed_trials += 1;
                    delta = 0.25 * snorm.min(delta_iter);
                }
            }
        }
    };
    Local { x, fval: fx, iterations, evaluations, failed_trials, stop }
}

/// The largest `alpha <= 1` with `x + alpha p` inside the box, and the
/// variable whose bound stops it (if any).
fn first_bound(x: &[f64], p: &DVector<f64>, lb: &[f64], ub: &[f64]) -> (f64, Option<usize>) {
    let mut alpha = 1.0;
    let mut hit = None;
    for i in 0..x.len() {
        let a = if p[i] > 0.0 {
            (ub[i] - x[i]) / p[i]
        } else if p[i] < 0.0 {
            (lb[i] - x[i]) / p[i]
        } else {
            continue;
        };
        if a < alpha {
            alpha = a.max(0.0);
            hit = Some(i);
        }
    }
    (alpha, hit)
}

/// Projected L-BFGS with a backtracking (Armijo) line search along the
/// projected path: the quasi-Newton direction is built on the free
/// variables (not at a bound the gradient pushes against) from the last
/// `memory` steps, and each trial point is projected onto the box.
pub fn lbfgsb(f: &dyn Smooth, x0: &[f64], lb: &[f64], ub: &[f64], tol: &Tolerances) -> Local {
    const MEMORY: usize = 10;
    let n = x0.len();
    let mut x = x0.to_vec();
    clip(&mut x, lb, ub);
    let mut evaluations = 1;
    let Some((mut fx, mut g, _)) = f.value_gradient(&x) else {
        return Local::failed_at_start(x, f64::NAN, "at the start");
    };
    if !fx.is_finite() {
        return Local::failed_at_start(x, fx, "not finite at the start");
    }
    let mut mem: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut iterations = 0;
    let mut failed_trials = 0;
    let stop = loop {
        if projected_gradient_norm(&x, &g, lb, ub) < tol.gatol {
            break Stop::Converged("projected gradient below gatol");
        }
        if iterations >= tol.max_iterations {
            break Stop::MaxIterations;
        }
        iterations += 1;
        let free: Vec<bool> =
            (0..n).map(|i| !((x[i] <= lb[i] && g[i] > 0.0) || (x[i] >= ub[i] && g[i] < 0.0))).collect();
        // Two-loop recursion on the free variables.
        let mut q: Vec<f64> = (0..n).map(|i| if free[i] { g[i] } else { 0.0 }).collect();
        let dot = |a: &[f64], b: &[f64]| -> f64 { (0..n).filter(|&i| free[i]).map(|i| a[i] * b[i]).sum() };
        let mut alphas = Vec::with_capacity(mem.len());
        for (s, y) in mem.iter().rev() {
            let sy = dot(s, y);
            if sy <= 1e-300 {
                alphas.push(0.0);
                continue;
            }
            let a = dot(s, &q) / sy;
            for i in 0..n {
                q[i] -= a * y[i];
            }
            alphas.push(a);
        }
        let gamma = mem.last().map_or(1.0 / g.iter().map(|v| v * v).sum::<f64>().sqrt().max(1.0), |(s, y)| {
            let (sy, yy) = (dot(s, y), dot(y, y));
            if sy > 0.0 && yy > 0.0 {
                sy / yy
            } else {
                1.0
            }
        });
        for v in q.iter_mut() {
            *v *= gamma;
        }
        for ((s, y), a) in mem.iter().zip(alphas.iter().rev()) {
            let sy = dot(s, y);
            if sy <= 1e-300 {
                continue;
            }
            let b = dot(y, &q) / sy;
            for i in 0..n {
                q[i] += s[i] * (a - b);
            }
        }
        let mut d: Vec<f64> = (0..n).map(|i| if free[i] { -q[i] } else { 0.0 }).collect();
        if (0..n).map(|i| d[i] * g[i]).sum::<f64>() >= 0.0 {
            // Not a descent direction (curvature information gone bad): restart.
            mem.clear();
            d = (0..n).map(|i| if free[i] { -g[i] } else { 0.0 }).collect();
        }
        // Backtracking along the projected path.
        let mut t = 1.0;
        let mut accepted = None;
        while t * d.iter().map(|v| v.abs()).fold(0.0, f64::max) > tol.xtol {
            let mut xt: Vec<f64> = (0..n).map(|i| x[i] + t * d[i]).collect();
            clip(&mut xt, lb, ub);
            let decrease: f64 = (0..n).map(|i| g[i] * (xt[i] - x[i])).sum();
            evaluations += 1;
            match f.value_gradient(&xt) {
                Some((ft, gt, _)) if ft.is_finite() => {
                    if ft <= fx + 1e-4 * decrease {
                        accepted = Some((xt, ft, gt));
                        break;
                    }
                }
                _ => failed_trials += 1,
            }
            t *= 0.5;
        }
        let Some((xn, fnew, gnew)) = accepted else {
            break Stop::Converged("line search step below xtol");
        };
        let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| gnew[i] - g[i]).collect();
        if s.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>() > 1e-12 {
            mem.push((s, y));
            if mem.len() > MEMORY {
                mem.remove(0);
            }
        }
        let df = fx - fnew;
        x = xn;
        fx = fnew;
        g = gnew;
        if df < tol.fatol * 1e-3 {
            // L-BFGS steps are often short while it is still far from the
            // minimum, so it stops on a much smaller change than the trust region.
            break Stop::Converged("objective change below fatol/1000");
        }
    };
    Local { x, fval: fx, iterations, evaluations, failed_trials, stop }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock, with its exact Hessian (PSD near the minimum; the trust
    /// region copes with indefinite parts).
    struct Rosenbrock;
    impl Smooth for Rosenbrock {
        fn value(&self, x: &[f64]) -> Option<f64> {
            Some((1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2))
        }
        fn value_gradient(&self, x: &[f64]) -> Option<(f64, Vec<f64>, Vec<Vec<f64>>)> {
            let (a, b) = (x[0], x[1]);
            let f = self.value(x)?;
            let g = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
            let h = vec![vec![2.0 - 400.0 * b + 1200.0 * a * a, -400.0 * a], vec![-400.0 * a, 200.0]];
            Some((f, g, h))
        }
    }

    #[test]
    fn trust_region_finds_the_rosenbrock_minimum() {
        let r = trust_region(&Rosenbrock, &[-1.2, 1.0], &[-5.0, -5.0], &[5.0, 5.0], &Tolerances::default());
        assert!(matches!(r.stop, Stop::Converged(_)), "{:?}", r.stop);
        assert!((r.x[0] - 1.0).abs() < 1e-4 && (r.x[1] - 1.0).abs() < 1e-4, "{:?}", r.x);
    }

    #[test]
    fn trust_region_stops_at_an_active_bound() {
        // The unconstrained minimum (1, 1) is outside; the constrained one is
        // on x0 = 0.5 at x1 = 0.25.
        let r = trust_region(&Rosenbrock, &[-1.0, -1.0], &[-2.0, -2.0], &[0.5, 2.0], &Tolerances::default());
        assert!((r.x[0] - 0.5).abs() < 1e-6 && (r.x[1] - 0.25).abs() < 1e-4, "{:?} {:?}", r.x, r.stop);
    }

    #[test]
    fn lbfgsb_finds_the_rosenbrock_minimum_and_respects_bounds() {
        let tol = Tolerances { fatol: 1e-9, ..Tolerances::default() };
        let r = lbfgsb(&Rosenbrock, &[-1.2, 1.0], &[-5.0, -5.0], &[5.0, 5.0], &tol);
        assert!((r.x[0] - 1.0).abs() < 1e-3 && (r.x[1] - 1.0).abs() < 1e-3, "{:?} {:?}", r.x, r.stop);
        let r = lbfgsb(&Rosenbrock, &[-1.0, -1.0], &[-2.0, -2.0], &[0.5, 2.0], &tol);
        assert!((r.x[0] - 0.5).abs() < 1e-6 && (r.x[1] - 0.25).abs() < 1e-3, "{:?} {:?}", r.x, r.stop);
    }

    #[test]
    fn subproblem_hits_the_boundary_for_an_indefinite_hessian() {
        let g = DVector::from_vec(vec![1.0, 0.0]);
        let h = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, -1.0]);
        let p = tr_subproblem(&g, &h, 2.0);
        assert!((p.norm() - 2.0).abs() < 1e-8, "{p}");
        // The hard case (no gradient along the negative curvature) still moves along it.
        let h = DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 0.0, -1.0]);
        let p = tr_subproblem(&g, &h, 1.0);
        assert!((p.norm() - 1.0).abs() < 1e-8 && p[1].abs() > 0.5, "{p}");
    }

    /// `|x - (1, 1)|^2` with a Hessian approximation 10 times too small (so
    /// model steps overshoot 10-fold), that cannot be computed where
    /// `x0 + x1 > 2.5` (the value, as a failed simulation) or, with `grad_only`,
    /// only its gradient fails there (a sensitivity system that fails where
    /// the model itself runs).
    struct Fragile {
        grad_only: bool,
    }
    impl Smooth for Fragile {
        fn value(&self, x: &[f64]) -> Option<f64> {
            (self.grad_only || x[0] + x[1] <= 2.5).then(|| (x[0] - 1.0).powi(2) + (x[1] - 1.0).powi(2))
        }
        fn value_gradient(&self, x: &[f64]) -> Option<(f64, Vec<f64>, Vec<Vec<f64>>)> {
            if x[0] + x[1] > 2.5 {
                return None;
            }
            let f = self.value(x)?;
            Some((f, vec![2.0 * (x[0] - 1.0), 2.0 * (x[1] - 1.0)], vec![vec![0.2, 0.0], vec![0.0, 0.2]]))
        }
    }

    #[test]
    fn failed_trial_points_shrink_the_region_and_the_minimum_is_still_reached() {
        for grad_only in [false, true] {
            let f = Fragile { grad_only };
            let r = trust_region(&f, &[-3.0, -3.0], &[-5.0, -5.0], &[5.0, 5.0], &Tolerances::default());
            assert!(r.failed_trials > 0, "grad_only {grad_only}: no trial point failed, the test tests nothing");
            assert!(matches!(r.stop, Stop::Converged(_)), "grad_only {grad_only}: {:?}", r.stop);
            assert!((r.x[0] - 1.0).abs() < 1e-3 && (r.x[1] - 1.0).abs() < 1e-3, "grad_only {grad_only}: {:?}", r.x);
            let r = lbfgsb(&f, &[-3.0, -3.0], &[-5.0, -5.0], &[5.0, 5.0], &Tolerances::default());
            assert!(
                (r.x[0] - 1.0).abs() < 1e-3 && (r.x[1] - 1.0).abs() < 1e-3,
                "lbfgsb, grad_only {grad_only}: {:?}",
                r.x
            );
        }
    }
}
