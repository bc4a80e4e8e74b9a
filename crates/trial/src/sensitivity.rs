//! Global sensitivity: Sobol indices of an endpoint with respect to the
//! population parameters.
//!
//! Sampling and estimators follow Saltelli et al. 2010 ("Variance based
//! sensitivity analysis of model output", Comput. Phys. Commun. 181):
//! two independent `n x d` matrices `A` and `B` of unit points (the two
//! halves of a `2d`-dimensional digitally shifted Sobol sequence while `2d`
//! fits the direction numbers, else seeded pseudo-random points), and for
//! each parameter `i` the matrix `AB_i`: `A` with column `i` taken from `B`.
//! That is `n (d + 2)` evaluations. With `V` the variance of all `f(A)` and
//! `f(B)`:
//! - first order (Saltelli 2010, table 2 (b)):
//!   `S_i = mean(f(B) (f(AB_i) - f(A))) / V`, with `f` centred on the mean
//!   of `f(A)` and `f(B)` first (same expectation, much smaller variance
//!   when the output's mean is large against its spread);
//! - total (Jansen 1999, table 2 (f)):
//!   `ST_i = mean((f(A) - f(AB_i))^2) / (2 V)`.
//!
//! Confidence intervals are percentile bootstraps over the `n` rows (each
//! resample from its own seeded stream). Unit points become parameter values
//! through each marginal's inverse CDF, independently: Sobol indices are
//! defined for independent inputs, so a correlation in the spec is not used
//! here, and neither are the plausibility constraints (a rejected candidate
//! would break the design).

use rayon::prelude::*;
use serde::Serialize;

use crate::analysis::quantile;
use crate::sample::{mix, sobol_unit, Rng, SOBOL_MAX_DIMS};

/// The two base matrices of the design, row-major: `a[j]` and `b[j]` are
/// points in `(0, 1)^d`.
pub fn design(d: usize, n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let qmc = 2 * d <= SOBOL_MAX_DIMS;
    let point = |j: usize, half: usize| -> Vec<f64> {
        if qmc {
            // Point 0 of an unshifted Sobol sequence is the origin; the
            // sequence starts at 1 so that the first `n` points are balanced.
            (0..d).map(|k| sobol_unit(j as u64 + 1, half * d + k, seed)).collect()
        } else {
            let mut rng = Rng::stream(seed, j as u64, 0x5a17 + half as u64);
            (0..d).map(|_| rng.uniform()).collect()
        }
    };
    ((0..n).map(|j| point(j, 0)).collect(), (0..n).map(|j| point(j, 1)).collect())
}

/// The rows of `AB_i`.
pub fn mixed(a: &[Vec<f64>], b: &[Vec<f64>], i: usize) -> Vec<Vec<f64>> {
    a.iter()
        .zip(b)
        .map(|(ra, rb)| {
            let mut r = ra.clone();
            r[i] = rb[i];
            r
        })
        .collect()
}

/// One parameter's indices with their intervals.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Index {
    pub parameter: String,
    pub first: f64,
    pub first_low: f64,
    pub first_high: f64,
    pub total: f64,
    pub total_low: f64,
    pub total_high: f64,
}

/// First-order and total indices from the evaluations `fa[j] = f(A_j)`,
/// `fb[j] = f(B_j)`, `fab[i][j] = f(AB_i,j)`. Rows where any evaluation is
/// NaN are dropped (all of them, so the estimators stay paired).
pub fn estimate(
    names: &[String],
    fa: &[f64],
    fb: &[f64],
    fab: &[Vec<f64>],
    bootstrap: usize,
    confidence: f64,
    seed: u64,
) -> (Vec<Index>, usize) {
    let keep: Vec<usize> =
        (0..fa.len()).filter(|&j| !fa[j].is_nan() && !fb[j].is_nan() && fab.iter().all(|f| !f[j].is_nan())).collect();
    let point = |rows: &mut dyn Iterator<Item = usize>| -> Vec<(f64, f64)> {
        let rows: Vec<usize> = rows.collect();
        let n = rows.len() as f64;
        let mean = rows.iter().map(|&j| fa[j] + fb[j]).sum::<f64>() / (2.0 * n);
        let var = rows.iter().map(|&j| (fa[j] - mean).powi(2) + (fb[j] - mean).powi(2)).sum::<f64>() / (2.0 * n - 1.0);
        fab.iter()
            .map(|f| {
                // f(B) centred: the same expectation (f(AB_i) - f(A) has
                // mean zero), far less variance when the output's mean is
                // large against its spread (as SALib does).
                let v1 = rows.iter().map(|&j| (fb[j] - mean) * (f[j] - fa[j])).sum::<f64>() / n;
                let vt = rows.iter().map(|&j| (fa[j] - f[j]).powi(2)).sum::<f64>() / (2.0 * n);
                (v1 / var, vt / var)
            })
            .collect()
    };
    let est = point(&mut keep.iter().copied());
    let m = keep.len() as u64;
    let resamples: Vec<Vec<(f64, f64)>> = if m < 2 {
        vec![]
    } else {
        (0..bootstrap as u64)
            .into_par_iter()
            .map(|k| {
                let mut rng = Rng::stream(mix(seed ^ 0x0005_0b01), k, 3);
                point(&mut (0..m).map(|_| keep[rng.below(m) as usize]))
            })
            .collect()
    };
    let alpha = (1.0 - confidence) / 2.0;
    let interval = |i: usize, total: bool| -> (f64, f64) {
        let mut v: Vec<f64> =
            resamples.iter().map(|r| if total { r[i].1 } else { r[i].0 }).filter(|x| !x.is_nan()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        (quantile(&v, alpha), quantile(&v, 1.0 - alpha))
    };
    let indices = est
        .iter()
        .enumerate()
        .map(|(i, &(first, total))| {
            let (first_low, first_high) = interval(i, false);
            let (total_low, total_high) = interval(i, true);
            Index {
                parameter: names.get(i).cloned().unwrap_or_default(),
                first,
                first_low,
                first_high,
                total,
                total_low,
                total_high,
            }
        })
        .collect();
    (indices, fa.len() - keep.len())
}

/// The Sobol analysis of one endpoint in a trial.
#[derive(Clone, Debug, Serialize)]
pub struct Sensitivity {
    pub endpoint: String,
    pub arm: String,
    /// Base samples `n`.
    pub samples: usize,
    /// Simulations run: `n (d + 2)`.
    pub simulations: usize,
    /// Rows dropped because a simulation failed or the endpoint was undefined.
    pub dropped: usize,
    /// "sobol" (quasi-random) or "random".
    pub design: String,
    pub seed: u64,
    pub bootstrap: usize,
    pub confidence: f64,
    pub indices: Vec<Index>,
}

/// Runs the spec's Sobol analysis (if any) on its arm: every design point
/// is a virtual patient with those parameter values.
pub fn run(plan: &crate::plan::Plan) -> Vec<Sensitivity> {
    let spec = &plan.spec;
    let Some(sb) = &spec.analysis.sobol else { return vec![] };
    let d = spec.population.parameters.len();
    if d == 0 {
        return vec![];
    }
    let arm = &plan.arms[sb.arm];
    let (a, b) = design(d, sb.samples, sb.seed);
    let mut points: Vec<Vec<f64>> = Vec::with_capacity(sb.samples * (d + 2));
    points.extend(a.iter().cloned());
    points.extend(b.iter().cloned());
    for i in 0..d {
        points.extend(mixed(&a, &b, i));
    }
    let nan = vec![f64::NAN; spec.endpoints.len()];
    let results: Vec<Vec<f64>> = points
        .par_iter()
        .map(|u| crate::run::endpoints_of(plan, arm, &plan.sampler.independent(u)).unwrap_or_else(|_| nan.clone()))
        .collect();
    let n = sb.samples;
    let names: Vec<String> = spec.population.parameters.iter().map(|p| p.id.clone()).collect();
    sb.endpoints
        .iter()
        .map(|&e| {
            let col = |k: usize| -> Vec<f64> { results[k * n..(k + 1) * n].iter().map(|r| r[e]).collect() };
            let fab: Vec<Vec<f64>> = (0..d).map(|i| col(2 + i)).collect();
            let (indices, dropped) =
                estimate(&names, &col(0), &col(1), &fab, sb.bootstrap, spec.analysis.confidence, sb.seed);
            Sensitivity {
                endpoint: spec.endpoints[e].name.clone(),
                arm: arm.name.clone(),
                samples: n,
                simulations: points.len(),
                dropped,
                design: if 2 * d <= SOBOL_MAX_DIMS { "sobol" } else { "random" }.into(),
                seed: sb.seed,
                bootstrap: sb.bootstrap,
                confidence: spec.analysis.confidence,
                indices,
            }
        })
        .collect()
}
