//! Uncertainty of a fit: profile likelihoods with confidence intervals, and
//! prediction bands of the observables from the Laplace approximation.
//!
//! Profiles: for a parameter `k`, its scaled value is fixed on a grid
//! stepping away from the optimum in both directions, and the other
//! parameters are re-optimised at each point (trust region, warm-started
//! from the previous point). The 95% confidence interval is where the
//! profile stays within `chi2(0.95, 1) / 2 = 1.92` of the optimum on the
//! negative log-likelihood scale (likelihood-ratio test); an end that the
//! profile does not cross before the bound is open (`None`).
//!
//! Bands: parameter vectors are drawn from `N(x_hat, H^-1)` with `H` the
//! Gauss-Newton Hessian at the optimum (the Laplace approximation of the
//! posterior, seeded), clipped to the bounds, and every observable of every
//! experiment is simulated for each draw; the band is the central `level`
//! quantile range of the draws. Directions the data do not determine
//! (eigenvalues of `H` below `1e-8` times the largest) get that floor
//! instead, so their spread is large but finite, and clipping to the bounds
//! keeps the draws inside the parameter space. Optionally each draw adds
//! measurement noise from the noise model, which gives a band for new
//! measurements rather than for the noise-free observable.

use std::sync::Mutex;

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use vht_ir::eval::eval;

use crate::multistart::{AsSmooth, Rng};
use crate::objective::{Extra, RowEnv};
use crate::optimize::{self, Smooth, Tolerances};
use crate::problem::{NoiseDistribution, Transformation};
use crate::{FitError, Objective};

/// The likelihood-ratio threshold of a 95% confidence interval on the
/// negative log-likelihood scale: `chi2(0.95, df = 1) / 2`.
pub const CI95: f64 = 3.841_458_820_694_124 / 2.0;

/// Settings of [`profile`]. Plain data.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// Positions in the scaled estimated parameter vector to profile.
    pub parameters: Vec<usize>,
    /// Largest number of points on each side of the optimum.
    pub max_steps: usize,
    /// A side stops once the profile rises this far above the optimum.
    pub stop_above: f64,
    /// Iteration limit of each re-optimisation.
    pub max_iterations: usize,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions { parameters: Vec::new(), max_steps: 30, stop_above: 2.0 * CI95 + 0.5, max_iterations: 200 }
    }
}

/// One point of a profile.
#[derive(Clone, Debug)]
pub struct ProfilePoint {
    /// The profiled parameter's scaled value.
    pub value: f64,
    /// The re-optimised objective.
    pub fval: f64,
    /// All scaled estimated parameters at this point.
    pub x: Vec<f64>,
}

/// The profile of one parameter.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Position in the scaled estimated parameter vector.
    pub index: usize,
    pub id: String,
    /// The optimum the profile starts from.
    pub optimum: f64,
    /// Sorted by value.
    pub points: Vec<ProfilePoint>,
    /// The 95% confidence interval (scaled); `None` where the profile does
    /// not cross the threshold within the bounds.
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// The objective with one scaled parameter held at a value.
struct Fixed<'a> {
    inner: &'a dyn Smooth,
    k: usize,
    value: f64,
}

impl Fixed<'_> {
    fn full(&self, y: &[f64]) -> Vec<f64> {
        let mut x = y.to_vec();
        x.insert(self.k, self.value);
        x
    }
}

impl Smooth for Fixed<'_> {
    fn value(&self, y: &[f64]) -> Option<f64> {
        self.inner.value(&self.full(y))
    }
    fn value_gradient(&self, y: &[f64]) -> Option<(f64, Vec<f64>, Vec<Vec<f64>>)> {
        let (f, mut g, mut h) = self.inner.value_gradient(&self.full(y))?;
        g.remove(self.k);
        h.remove(self.k);
        for row in &mut h {
            row.remove(self.k);
        }
        Some((f, g, h))
    }
}

/// Profile likelihoods at the optimum `x_hat` (scaled) with value `f_hat`;
/// profiles run in parallel.
pub fn profile(
    objective: &Objective,
    x_hat: &[f64],
    f_hat: f64,
    options: &ProfileOptions,
) -> Result<Vec<Profile>, FitError> {
    let (lb, ub) = objective.scaled_bounds();
    let n = lb.len();
    if x_hat.len() != n {
        return Err(FitError::ScaledCount { expected: n, found: x_hat.len() });
    }
    if let Some(&k) = options.parameters.iter().find(|&&k| k >= n) {
        return Err(FitError::ScaledCount { expected: n, found: k + 1 });
    }
    // The first step of each side: a quarter of the Laplace standard
    // deviation, within 1e-3 and 5% of the range.
    let (_, _, h) = objective.evaluate_with_gradient(x_hat)?;
    let cov = pseudo_inverse(&h);
    let estimated = objective.estimated();
    options
        .parameters
        .par_iter()
        .map(|&k| {
            let range = ub[k] - lb[k];
            let sd = cov[(k, k)].max(0.0).sqrt();
            let step0 = (0.25 * sd).clamp(1e-3 * range, 0.05 * range);
            let f = AsSmooth { objective, last_error: Mutex::new(None) };
            let tol = Tolerances { max_iterations: options.max_iterations, ..Tolerances::default() };
            let mut points = vec![ProfilePoint { value: x_hat[k], fval: f_hat, x: x_hat.to_vec() }];
            for dir in [-1.0, 1.0] {
                let mut prev = x_hat.to_vec();
                let mut prev_f = f_hat;
                let mut step = step0;
                for _ in 0..options.max_steps {
                    let at_bound = if dir < 0.0 { prev[k] <= lb[k] } else { prev[k] >= ub[k] };
                    if at_bound {
                        break;
                    }
                    let value = (prev[k] + dir * step).clamp(lb[k], ub[k]);
                    let fixed = Fixed { inner: &f, k, value };
                    let mut y = prev.clone();
                    y.remove(k);
                    let (mut lbr, mut ubr) = (lb.clone(), ub.clone());
                    lbr.remove(k);
                    ubr.remove(k);
                    let local = optimize::trust_region(&fixed, &y, &lbr, &ubr, &tol);
                    if local.fval.is_nan() {
                        // The simulation fails here: the profile ends on this side.
                        break;
                    }
                    let x = fixed.full(&local.x);
                    let rise = local.fval - prev_f;
                    points.push(ProfilePoint { value, fval: local.fval, x: x.clone() });
                    if local.fval - f_hat > options.stop_above {
                        break;
                    }
                    // Aim at rises of about 0.3 per step.
                    step *= (0.3 / rise.abs().max(1e-3)).sqrt().clamp(0.5, 2.0);
                    prev = x;
                    prev_f = local.fval;
                }
            }
            points.sort_by(|a, b| a.value.total_cmp(&b.value));
            let (lower, upper) = interval(&points, x_hat[k], f_hat, CI95);
            Ok(Profile {
                index: k,
                id: objective.problem.parameters[estimated[k]].id.clone(),
                optimum: f_hat,
                points,
                lower,
                upper,
            })
        })
        .collect()
}

/// Where the profile first rises `threshold` above `f_hat` on each side of
/// `center` (linear interpolation between points).
pub fn interval(points: &[ProfilePoint], center: f64, f_hat: f64, threshold: f64) -> (Option<f64>, Option<f64>) {
    let level = f_hat + threshold;
    let cross = |a: &ProfilePoint, b: &ProfilePoint| {
        let t = (level - a.fval) / (b.fval - a.fval);
        a.value + t * (b.value - a.value)
    };
    let mid = points.iter().position(|p| p.value >= center).unwrap_or(0);
    let mut upper = None;
    for i in mid..points.len().saturating_sub(1) {
        if points[i].fval <= level && points[i + 1].fval > level {
            upper = Some(cross(&points[i], &points[i + 1]));
            break;
        }
    }
    let mut lower = None;
    for i in (1..=mid.min(points.len().saturating_sub(1))).rev() {
        if points[i].fval <= level && points[i - 1].fval > level {
            lower = Some(cross(&points[i], &points[i - 1]));
            break;
        }
    }
    (lower, upper)
}

/// `H^+` with eigenvalues below `1e-8` times the largest raised to that floor.
fn pseudo_inverse(h: &[Vec<f64>]) -> DMatrix<f64> {
    let n = h.len();
    let m = DMatrix::from_fn(n, n, |a, b| 0.5 * (h[a][b] + h[b][a]));
    let eig = m.symmetric_eigen();
    let max = eig.eigenvalues.iter().fold(0.0f64, |a, &b| a.max(b));
    let floor = (max * 1e-8).max(1e-300);
    let inv = DVector::from_iterator(n, eig.eigenvalues.iter().map(|&l| 1.0 / l.max(floor)));
    &eig.eigenvectors * DMatrix::from_diagonal(&inv) * eig.eigenvectors.transpose()
}

/// The simulated observables of one experiment at given times.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub preequilibration: Option<String>,
    pub simulation: String,
    pub observable: String,
    pub times: Vec<f64>,
    /// The observable (linear scale, without noise) at `times`.
    pub values: Vec<f64>,
    /// Its noise parameter (on the transformed scale) at `times`.
    pub sigmas: Vec<f64>,
}

/// Settings of [`prediction_bands`]. Plain data.
#[derive(Clone, Debug)]
pub struct BandOptions {
    pub samples: usize,
    pub seed: u64,
    /// Central probability of the band (0.95: 2.5% to 97.5% quantiles).
    pub level: f64,
    /// Add measurement noise to each draw (a band for new measurements).
    pub include_noise: bool,
}

impl Default for BandOptions {
    fn default() -> Self {
        BandOptions { samples: 200, seed: 0, level: 0.95, include_noise: false }
    }
}

/// A prediction with its band.
#[derive(Clone, Debug)]
pub struct PredictionBand {
    pub preequilibration: Option<String>,
    pub simulation: String,
    pub observable: String,
    pub times: Vec<f64>,
    /// At the estimate.
    pub best: Vec<f64>,
    pub median: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// Bands with the draws that went into them.
#[derive(Clone, Debug)]
pub struct Bands {
    pub bands: Vec<PredictionBand>,
    /// Draws whose simulation failed (left out of the quantiles).
    pub failed: usize,
    pub samples: usize,
}

impl Objective {
    /// Every observable measured in every experiment, simulated at scaled
    /// estimated parameters `x`, at `times` (or, if `None`, at the
    /// experiment's finite measurement times). Placeholder parameters
    /// (`observableParameter..`, `noiseParameter..`) take the values of the
    /// first measurement of that observable in that experiment.
    pub fn predict(&self, x: &[f64], times: Option<&[f64]>) -> Result<Vec<Prediction>, FitError> {
        let values = self.values_from_scaled(x)?;
        let mut out = Vec::new();
        let mut cache = Vec::new();
        for e in &self.experiments {
            let overrides = self.experiment_overrides(e, &values, &mut cache)?;
            let t: Vec<f64> = match times {
                Some(t) => {
                    let mut t = t.to_vec();
                    t.sort_by(f64::total_cmp);
                    t
                }
                None => e.times.clone(),
            };
            let traj = self.run_on(&self.sim, &self.outputs, &t, false, &overrides, &e.name)?;
            let mut seen = Vec::new();
            for r in &e.rows {
                if seen.contains(&r.observable) {
                    continue;
                }
                seen.push(r.observable);
                let code = &self.observables[r.observable];
                let mut extra_vals: Vec<f64> = self
                    .extras
                    .iter()
                    .map(|x| match x {
                        Extra::Parameter(i) => values[*i],
                        Extra::Placeholder => f64::NAN,
                    })
                    .collect();
                for (slots, given) in [(&code.obs_slots, &r.obs_vals), (&code.noise_slots, &r.noise_vals)] {
                    for (slot, v) in slots.iter().zip(given) {
                        if let Some(k) = slot {
                            extra_vals[*k] = v.get(&values);
                        }
                    }
                }
                let mut vals = Vec::with_capacity(t.len());
                let mut sigmas = Vec::with_capacity(t.len());
                for (i, &ti) in t.iter().enumerate() {
                    let env = RowEnv {
                        col_of: &self.col_of,
                        row: traj.row(i),
                        extras: &extra_vals,
                        n_model: self.n_model,
                        t: ti,
                    };
                    vals.push(eval(&code.h, &env));
                    sigmas.push(eval(&code.sigma, &env));
                }
                out.push(Prediction {
                    preequilibration: e.preeq.map(|c| self.problem.conditions[c].id.clone()),
                    simulation: self.problem.conditions[e.sim].id.clone(),
                    observable: self.problem.observables[r.observable].id.clone(),
                    times: t.clone(),
                    values: vals,
                    sigmas,
                });
            }
        }
        Ok(out)
    }
}

/// Standard normal and uniform `[0, 1)` numbers: the randomness of
/// measurement noise in [`Objective::add_noise`].
pub trait NoiseSource {
    fn normal(&mut self) -> f64;
    fn uniform(&mut self) -> f64;
}

impl NoiseSource for Rng {
    fn normal(&mut self) -> f64 {
        Rng::normal(self)
    }
    fn uniform(&mut self) -> f64 {
        Rng::uniform(self)
    }
}

impl Objective {
    /// Turns predictions into draws of new measurements: adds noise of each
    /// observable's noise model (scale `sigmas`, on its transformed scale).
    /// `None` if a prediction's observable is not in the problem.
    pub fn add_noise(&self, predictions: &mut [Prediction], source: &mut impl NoiseSource) -> Option<()> {
        for pred in predictions {
            let code = self.problem.observables.iter().find(|ob| ob.id == pred.observable)?;
            for (v, s) in pred.values.iter_mut().zip(&pred.sigmas) {
                let e = match code.noise {
                    NoiseDistribution::Normal => s * source.normal(),
                    // Laplace by inverse CDF.
                    NoiseDistribution::Laplace => {
                        let u = source.uniform() - 0.5;
                        -s * u.signum() * (1.0 - 2.0 * u.abs()).ln()
                    }
                };
                *v = match code.transformation {
                    Transformation::Lin => *v + e,
                    Transformation::Log => (v.ln() + e).exp(),
                    Transformation::Log10 => 10f64.powf(v.log10() + e),
                };
            }
        }
        Some(())
    }
}

/// The `p` quantile of sorted values, interpolated linearly between order
/// statistics; NaN when there are none.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - frac) + sorted[i + 1] * frac
    } else {
        sorted[i]
    }
}

/// Prediction bands from the Laplace approximation at the estimate `x_hat`
/// (scaled) with Gauss-Newton Hessian `hessian` (see the module docs).
pub fn prediction_bands(
    objective: &Objective,
    x_hat: &[f64],
    hessian: &[Vec<f64>],
    times: Option<&[f64]>,
    options: &BandOptions,
) -> Result<Bands, FitError> {
    let mut out = bands_of(objective, x_hat, hessian, times, options, &[options.include_noise])?;
    Ok(out.remove(0))
}

/// The band of the observable and the band of a new measurement (what
/// [`prediction_bands`] gives with `include_noise` false and true; that
/// field of `options` is not used), from one set of draws and simulations:
/// half the simulations of two calls.
pub fn prediction_and_measurement_bands(
    objective: &Objective,
    x_hat: &[f64],
    hessian: &[Vec<f64>],
    times: Option<&[f64]>,
    options: &BandOptions,
) -> Result<(Bands, Bands), FitError> {
    let mut out = bands_of(objective, x_hat, hessian, times, options, &[false, true])?;
    let measured = out.remove(1);
    Ok((out.remove(0), measured))
}

/// Noise draws per parameter draw in a band of new measurements.
///
/// Why more than one: a band's ends are the 2.5% and 97.5% sample quantiles,
/// and the interval between sample quantiles of n draws covers a new draw
/// with probability below its nominal level (between the k-th smallest and
/// the k-th largest of n: (n + 1 - 2k)/(n + 1); with 200 draws and
/// interpolated quantiles, 94.0% for a nominal 95%). Noise costs no
/// simulation, so 20 per draw make that 4,000 values and the shortfall
/// 0.05% (vht-twin's posterior bands do the same).
const NOISE_DRAWS: usize = 20;

/// One [`Bands`] per entry of `noise` (with or without measurement noise),
/// all from the same draws and simulations.
fn bands_of(
    objective: &Objective,
    x_hat: &[f64],
    hessian: &[Vec<f64>],
    times: Option<&[f64]>,
    options: &BandOptions,
    noise: &[bool],
) -> Result<Vec<Bands>, FitError> {
    let (lb, ub) = objective.scaled_bounds();
    let n = lb.len();
    if x_hat.len() != n || hessian.len() != n {
        return Err(FitError::ScaledCount { expected: n, found: x_hat.len() });
    }
    let best = objective.predict(x_hat, times)?;
    // Draws: x_hat + Q diag(1/sqrt(lambda)) z.
    let m = DMatrix::from_fn(n, n, |a, b| 0.5 * (hessian[a][b] + hessian[b][a]));
    let eig = m.symmetric_eigen();
    let max = eig.eigenvalues.iter().fold(0.0f64, |a, &b| a.max(b));
    let floor = (max * 1e-8).max(1e-300);
    let mut rng = Rng::new(options.seed);
    let draws: Vec<(Vec<f64>, u64)> = (0..options.samples)
        .map(|_| {
            let z = DVector::from_iterator(n, (0..n).map(|k| rng.normal() / eig.eigenvalues[k].max(floor).sqrt()));
            let d = &eig.eigenvectors * z;
            let x: Vec<f64> = (0..n).map(|k| (x_hat[k] + d[k]).clamp(lb[k], ub[k])).collect();
            // Each draw gets its own noise seed, so results do not depend on threads.
            (x, (rng.uniform() * u64::MAX as f64) as u64)
        })
        .collect();
    // Per draw and entry of `noise`: the prediction, or NOISE_DRAWS noisy
    // copies of it (None: the simulation failed).
    let sims: Vec<Option<Vec<Vec<Vec<Prediction>>>>> = draws
        .par_iter()
        .map(|(x, seed)| {
            let p = objective.predict(x, times).ok()?;
            noise
                .iter()
                .map(|&with_noise| {
                    if !with_noise {
                        return Some(vec![p.clone()]);
                    }
                    let mut rng = Rng::new(*seed);
                    (0..NOISE_DRAWS)
                        .map(|_| {
                            let mut p = p.clone();
                            objective.add_noise(&mut p, &mut rng)?;
                            Some(p)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let ok: Vec<&Vec<Vec<Vec<Prediction>>>> = sims.iter().flatten().collect();
    let failed = sims.len() - ok.len();
    let alpha = (1.0 - options.level) / 2.0;
    let bands_at = |which: usize| {
        best.iter()
            .enumerate()
            .map(|(b, p)| {
                let mut lower = Vec::new();
                let mut upper = Vec::new();
                let mut median = Vec::new();
                for i in 0..p.times.len() {
                    let mut v: Vec<f64> =
                        ok.iter().flat_map(|s| &s[which]).map(|r| r[b].values[i]).filter(|v| v.is_finite()).collect();
                    v.sort_by(f64::total_cmp);
                    lower.push(quantile(&v, alpha));
                    median.push(quantile(&v, 0.5));
                    upper.push(quantile(&v, 1.0 - alpha));
                }
                PredictionBand {
                    preequilibration: p.preequilibration.clone(),
                    simulation: p.simulation.clone(),
                    observable: p.observable.clone(),
                    times: p.times.clone(),
                    best: p.values.clone(),
                    median,
                    lower,
                    upper,
                }
            })
            .collect()
    };
    Ok((0..noise.len()).map(|which| Bands { bands: bands_at(which), failed, samples: options.samples }).collect())
}
