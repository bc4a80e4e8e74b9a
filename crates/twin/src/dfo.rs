//! The fallback when the objective has no gradient: a multistart of
//! bounded Nelder-Mead, and a finite-difference Hessian at the optimum.
//!
//! Why: `vht_fit` has no forward sensitivities for some models (algebraic
//! rules, delays, events whose time depends on an estimated parameter; doses
//! at given times are fine). The likelihood itself is fine, so a
//! derivative-free local method still fits a twin's few parameters; it is
//! slower and less precise than the trust region, which is used whenever
//! gradients exist.

use rayon::prelude::*;
use vht_fit::Objective;

/// One local Nelder-Mead run in the scaled bounds (points outside are
/// projected onto the box). Returns the best point, its value and the
/// number of evaluations (kept for debugging), or `None` if the start could not be evaluated.
fn nelder_mead(
    objective: &Objective,
    x0: &[f64],
    lb: &[f64],
    ub: &[f64],
    max_evals: usize,
) -> Option<(Vec<f64>, f64, usize)> {
    let n = x0.len();
    let clamp = |x: &mut Vec<f64>| {
        for k in 0..n {
            x[k] = x[k].clamp(lb[k], ub[k]);
        }
    };
    let evals = std::cell::Cell::new(0usize);
    let f = |x: &[f64]| -> f64 {
        evals.set(evals.get() + 1);
        objective.evaluate_scaled(x).ok().filter(|v| v.is_finite()).unwrap_or(f64::INFINITY)
    };
    // Initial simplex: 5% of each range from the start.
    let mut pts: Vec<Vec<f64>> = vec![x0.to_vec()];
    for k in 0..n {
        let mut p = x0.to_vec();
        let step = 0.05 * (ub[k] - lb[k]);
        p[k] = if p[k] + step <= ub[k] { p[k] + step } else { p[k] - step };
        pts.push(p);
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| f(p)).collect();
    if !vals[0].is_finite() {
        return None;
    }
    while evals.get() < max_evals {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        pts = order.iter().map(|&i| pts[i].clone()).collect();
        vals = order.iter().map(|&i| vals[i]).collect();
        let size =
            (1..=n).map(|i| (0..n).map(|k| (pts[i][k] - pts[0][k]).abs()).fold(0.0, f64::max)).fold(0.0, f64::max);
        if (vals[n] - vals[0]).abs() < 1e-9 * (1.0 + vals[0].abs()) && size < 1e-6 {
            break;
        }
        let centroid: Vec<f64> = (0..n).map(|k| pts[..n].iter().map(|p| p[k]).sum::<f64>() / n as f64).collect();
        let worst = pts[n].clone();
        let along = |t: f64| -> Vec<f64> {
            let mut x: Vec<f64> = (0..n).map(|k| centroid[k] + t * (worst[k] - centroid[k])).collect();
            clamp(&mut x);
            x
        };
        let xr = along(-1.0);
        let fr = f(&xr);
        if fr < vals[0] {
            let xe = along(-2.0);
            let fe = f(&xe);
            (pts[n], vals[n]) = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < vals[n - 1] {
            (pts[n], vals[n]) = (xr, fr);
        } else {
            let (xc, fc) = if fr < vals[n] {
                let x = along(-0.5);
                let v = f(&x);
                (x, v)
            } else {
                let x = along(0.5);
                let v = f(&x);
                (x, v)
            };
            if fc < vals[n].min(fr) {
                (pts[n], vals[n]) = (xc, fc);
            } else {
                // Shrink towards the best point.
                for i in 1..=n {
                    let mut x: Vec<f64> = (0..n).map(|k| pts[0][k] + 0.5 * (pts[i][k] - pts[0][k])).collect();
                    clamp(&mut x);
                    vals[i] = f(&x);
                    pts[i] = x;
                }
            }
        }
    }
    let best = (0..=n).min_by(|&a, &b| vals[a].total_cmp(&vals[b]))?;
    Some((pts[best].clone(), vals[best], evals.get()))
}

/// The result of the derivative-free multistart.
pub struct DfoFit {
    pub x: Vec<f64>,
    pub fval: f64,
    /// Every start's final value (infinite when it failed).
    pub values: Vec<f64>,
}

/// Nelder-Mead from `starts` (scaled points); `max_evals` per start.
pub fn fit(objective: &Objective, starts: &[Vec<f64>], max_evals: usize) -> Option<DfoFit> {
    let (lb, ub) = objective.scaled_bounds();
    let runs: Vec<Option<(Vec<f64>, f64, usize)>> =
        starts.par_iter().map(|x0| nelder_mead(objective, x0, &lb, &ub, max_evals)).collect();
    let values: Vec<f64> = runs.iter().map(|r| r.as_ref().map_or(f64::INFINITY, |r| r.1)).collect();
    let best = runs.into_iter().flatten().filter(|r| r.1.is_finite()).min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(DfoFit { x: best.0, fval: best.1, values })
}

/// The Hessian of the objective at `x` by central differences (step `h`
/// on the parameter scale), symmetrised.
#[allow(clippy::needless_range_loop)] // i and j index x, hm and its transpose at once
pub fn hessian(objective: &Objective, x: &[f64], h: f64) -> Result<Vec<Vec<f64>>, vht_fit::FitError> {
    let n = x.len();
    let f = |d: &[(usize, f64)]| -> Result<f64, vht_fit::FitError> {
        let mut y = x.to_vec();
        for &(k, s) in d {
            y[k] += s;
        }
        objective.evaluate_scaled(&y)
    };
    let f0 = f(&[])?;
    let mut hm = vec![vec![0.0; n]; n];
    for i in 0..n {
        hm[i][i] = (f(&[(i, h)])? - 2.0 * f0 + f(&[(i, -h)])?) / (h * h);
        for j in 0..i {
            let v = (f(&[(i, h), (j, h)])? - f(&[(i, h), (j, -h)])? - f(&[(i, -h), (j, h)])? + f(&[(i, -h), (j, -h)])?)
                / (4.0 * h * h);
            hm[i][j] = v;
            hm[j][i] = v;
        }
    }
    Ok(hm)
}
