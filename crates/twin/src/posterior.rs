//! The twin's posterior by Markov chain Monte Carlo, and prediction bands
//! from its draws.
//!
//! Why not only the Laplace approximation: a patient gives a few dozen
//! measurements of a nonlinear model, and the posterior of, e.g., an
//! absorption rate is skewed; a Gaussian at the optimum then makes the
//! bands too narrow (measured with examples/calibration.rs on 20 patients
//! when this was written: 89% pooled coverage of held-back data by nominal
//! 95% bands, against 92% from MCMC draws). Metropolis-Hastings
//! samples the posterior itself: the target is `exp(-objective)` (the
//! negative log-likelihood plus the PEtab priors; flat on the parameter
//! scale within the bounds when there is none). Proposals are random-walk
//! steps with the Laplace covariance scaled by 2.38²/d (the optimal scaling
//! for a Gaussian target) and, now and then, independent draws from the
//! Laplace approximations at the distinct optima the multistart found, so
//! a chain can cross between modes; chains start at the modes, each chain
//! is seeded, and a draw whose simulation fails is rejected. R-hat and the
//! effective sample size are stored with the draws.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vht_fit::Objective;

use crate::TwinError;

/// Settings of [`sample`]. Plain data.
#[derive(Clone, Debug)]
pub struct McmcOptions {
    pub chains: usize,
    /// Steps per chain, burn-in included.
    pub steps: usize,
    /// Steps discarded at the start of each chain.
    pub burn_in: usize,
    /// Draws kept (evenly thinned over the chains after burn-in).
    pub keep: usize,
    pub seed: u64,
    /// Probability that a step proposes from the mixture of the Laplace
    /// approximations at the modes (an independence proposal) instead of a
    /// random-walk step; this is what lets a chain move between modes.
    pub jump: f64,
}

impl Default for McmcOptions {
    fn default() -> Self {
        McmcOptions { chains: 2, steps: 1500, burn_in: 300, keep: 400, seed: 0, jump: 0.2 }
    }
}

/// A local optimum of the objective (scaled parameters) with the
/// covariance of its Laplace approximation (the inverse Gauss-Newton Hessian).
#[derive(Clone, Debug)]
pub struct Mode {
    pub x: Vec<f64>,
    pub covariance: Vec<Vec<f64>>,
    /// The objective at `x`.
    pub objective: f64,
}

/// Posterior draws (scaled estimated parameters) and how they were made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Posterior {
    pub method: String,
    pub chains: usize,
    pub steps: usize,
    pub burn_in: usize,
    pub seed: u64,
    /// Accepted proposals / proposals, over all chains.
    pub acceptance: f64,
    /// Distinct local optima of the multistart the sampler was told about.
    #[serde(default)]
    pub modes: usize,
    /// Potential scale reduction (split R-hat over all chains after burn-in)
    /// and effective sample size, per estimated parameter: R-hat near 1
    /// and an ESS of a few hundred mean the chains agree and the 2.5%/97.5%
    /// quantiles of the bands are not Monte Carlo noise.
    #[serde(default)]
    pub rhat: Vec<f64>,
    #[serde(default)]
    pub ess: Vec<f64>,
    pub draws: Vec<Vec<f64>>,
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; 1 - u keeps the logarithm finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Gaussian N(mean, cov) through the eigen-decomposition of `cov` (a
/// semi-definite matrix works for drawing; its density uses eigenvalues
/// floored at 1e-12 of the largest).
struct Gaussian {
    mean: DVector<f64>,
    /// Eigenvectors scaled by the square roots of the eigenvalues: `L L^T = cov`.
    l: DMatrix<f64>,
    vectors: DMatrix<f64>,
    values: DVector<f64>,
    log_norm: f64,
}

impl Gaussian {
    fn new(mean: &[f64], cov: &[Vec<f64>], scale: f64) -> Gaussian {
        let n = mean.len();
        let m = DMatrix::from_fn(n, n, |a, b| 0.5 * (cov[a][b] + cov[b][a]) * scale * scale);
        let eig = m.symmetric_eigen();
        let max = eig.eigenvalues.iter().fold(0.0f64, |a, &b| a.max(b));
        let values = eig.eigenvalues.map(|l| l.max(max * 1e-12).max(1e-300));
        let l = &eig.eigenvectors * DMatrix::from_diagonal(&values.map(f64::sqrt));
        let log_norm =
            -0.5 * values.iter().map(|v| v.ln()).sum::<f64>() - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        Gaussian { mean: DVector::from_column_slice(mean), l, vectors: eig.eigenvectors, values, log_norm }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let z = DVector::from_iterator(self.mean.len(), (0..self.mean.len()).map(|_| normal(rng)));
        (&self.mean + &self.l * z).iter().copied().collect()
    }

    fn ln_pdf(&self, x: &[f64]) -> f64 {
        let d = DVector::from_column_slice(x) - &self.mean;
        let p = self.vectors.transpose() * d;
        self.log_norm - 0.5 * p.iter().zip(self.values.iter()).map(|(a, v)| a * a / v).sum::<f64>()
    }
}

/// The independence proposal: an equal-weight mixture of the modes' Laplace
/// approximations, widened by this factor so its tails are not lighter
/// than the posterior's (an independence sampler sticks where the proposal
/// is much lighter than the target).
const MIXTURE_WIDTH: f64 = 1.5;

fn ln_mixture(parts: &[Gaussian], x: &[f64]) -> f64 {
    let l: Vec<f64> = parts.iter().map(|g| g.ln_pdf(x)).collect();
    let m = l.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - (parts.len() as f64).ln()
}

/// Metropolis-Hastings from the modes: each step is, with probability
/// `o.jump`, an independence proposal from the mixture of the modes'
/// Laplace approximations, else a random-walk step with the Laplace
/// covariance of the chain's first mode scaled by 2.38²/d. Both kernels
/// leave the posterior invariant, so their mixture does; the independence
/// part is what moves a chain between modes that the random walk alone
/// never crosses (e.g. the meal model's absorption and gastric-emptying
/// rates, which can swap roles: measured, random walk alone left R-hat at
/// 1.6 and patients' bands on one side of the truth). Chain `c` starts at
/// mode `c mod modes`.
pub fn sample(objective: &Objective, modes: &[Mode], o: &McmcOptions) -> Result<Posterior, TwinError> {
    let Some(first) = modes.first() else {
        return Err(TwinError::Options { problem: "MCMC needs at least one mode to start from".into() });
    };
    let d = first.x.len();
    if o.chains == 0 || o.steps <= o.burn_in || o.keep == 0 || !(0.0..=1.0).contains(&o.jump) {
        return Err(TwinError::Options {
            problem: "MCMC needs chains > 0, steps > burn_in, keep > 0 and 0 <= jump <= 1".into(),
        });
    }
    let (lb, ub) = objective.scaled_bounds();
    let mixture: Vec<Gaussian> = modes.iter().map(|m| Gaussian::new(&m.x, &m.covariance, MIXTURE_WIDTH)).collect();
    let walks: Vec<Gaussian> =
        modes.iter().map(|m| Gaussian::new(&m.x, &m.covariance, 2.38 / (d.max(1) as f64).sqrt())).collect();
    let starts: Vec<f64> = modes.iter().map(|m| objective.evaluate_scaled(&m.x)).collect::<Result<_, _>>()?;
    let chains: Vec<(Vec<Vec<f64>>, usize)> = (0..o.chains)
        .into_par_iter()
        .map(|c| {
            // Each chain's stream depends only on the seed and its index.
            let mut rng = ChaCha8Rng::seed_from_u64(o.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(c as u64));
            let k = c % modes.len();
            let (mut x, mut f) = (modes[k].x.clone(), starts[k]);
            let walk = &walks[k];
            let mut kept = Vec::with_capacity(o.steps - o.burn_in);
            let mut accepted = 0;
            for step in 0..o.steps {
                let independent = rng.gen::<f64>() < o.jump;
                let y: Vec<f64> = if independent {
                    let part = rng.gen_range(0..mixture.len());
                    mixture[part].draw(&mut rng)
                } else {
                    let z = DVector::from_iterator(d, (0..d).map(|_| normal(&mut rng)));
                    let dx = &walk.l * z;
                    (0..d).map(|i| x[i] + dx[i]).collect()
                };
                let inside = (0..d).all(|i| lb[i] <= y[i] && y[i] <= ub[i]);
                let u: f64 = rng.gen();
                if inside {
                    if let Ok(fy) = objective.evaluate_scaled(&y) {
                        // log q(x) - log q(y) for the independence proposal; the walk is symmetric.
                        let correction =
                            if independent { ln_mixture(&mixture, &x) - ln_mixture(&mixture, &y) } else { 0.0 };
                        if fy.is_finite() && u.ln() < f - fy + correction {
                            x = y;
                            f = fy;
                            accepted += 1;
                        }
                    }
                }
                if step >= o.burn_in {
                    kept.push(x.clone());
                }
            }
            (kept, accepted)
        })
        .collect();
    let accepted: usize = chains.iter().map(|c| c.1).sum();
    let (rhat, ess) = diagnostics(&chains.iter().map(|c| c.0.as_slice()).collect::<Vec<_>>(), d);
    let all: Vec<Vec<f64>> = chains.into_iter().flat_map(|c| c.0).collect();
    let stride = (all.len() as f64 / o.keep as f64).max(1.0);
    let draws =
        (0..o.keep.min(all.len())).map(|i| all[((i as f64 * stride) as usize).min(all.len() - 1)].clone()).collect();
    Ok(Posterior {
        method: "Metropolis-Hastings: Laplace-scaled random walk plus independence proposals from the modes".into(),
        chains: o.chains,
        steps: o.steps,
        burn_in: o.burn_in,
        seed: o.seed,
        acceptance: accepted as f64 / (o.chains * o.steps) as f64,
        modes: modes.len(),
        rhat,
        ess,
        draws,
    })
}

/// Split R-hat and effective sample size per parameter (Gelman et al.,
/// Bayesian Data Analysis 3rd ed., 11.4-11.5): every chain is cut in two
/// halves, so a chain that drifts shows up as well as chains that disagree;
/// the ESS sums autocorrelations of the halves' pooled variogram up to the
/// first negative pair (Geyer's initial positive sequence).
pub fn diagnostics(chains: &[&[Vec<f64>]], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = chains.iter().map(|c| c.len()).min().unwrap_or(0) / 2;
    if n < 4 {
        return (vec![f64::NAN; d], vec![f64::NAN; d]);
    }
    let halves: Vec<&[Vec<f64>]> = chains.iter().flat_map(|c| [&c[..n], &c[n..2 * n]]).collect();
    let m = halves.len() as f64;
    let nf = n as f64;
    let mut rhat = Vec::with_capacity(d);
    let mut ess = Vec::with_capacity(d);
    for k in 0..d {
        let series: Vec<Vec<f64>> = halves.iter().map(|h| h.iter().map(|x| x[k]).collect()).collect();
        let means: Vec<f64> = series.iter().map(|s| s.iter().sum::<f64>() / nf).collect();
        let grand = means.iter().sum::<f64>() / m;
        let b = nf / (m - 1.0) * means.iter().map(|mu| (mu - grand).powi(2)).sum::<f64>();
        let w = series
            .iter()
            .zip(&means)
            .map(|(s, mu)| s.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (nf - 1.0))
            .sum::<f64>()
            / m;
        let var = (nf - 1.0) / nf * w + b / nf;
        // NaN-safe: a chain that never moved (or a NaN) is no evidence of convergence.
        if w.is_nan() || w <= 0.0 {
            rhat.push(f64::INFINITY);
            ess.push(0.0);
            continue;
        }
        rhat.push((var / w).sqrt());
        let rho = |t: usize| {
            let v = series.iter().map(|s| (0..n - t).map(|i| (s[i + t] - s[i]).powi(2)).sum::<f64>()).sum::<f64>()
                / (m * (nf - t as f64));
            1.0 - v / (2.0 * var)
        };
        let mut sum = 0.0;
        let mut t = 1;
        while t + 1 < n {
            let pair = rho(t) + rho(t + 1);
            if pair < 0.0 {
                break;
            }
            sum += pair;
            t += 2;
        }
        ess.push(m * nf / (1.0 + 2.0 * sum));
    }
    (rhat, ess)
}

/// One observable's band over times.
#[derive(Clone, Debug)]
pub struct DrawBand {
    pub observable: String,
    pub times: Vec<f64>,
    pub median: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// The sampler's stream as a source of measurement noise (the same draws
/// as before it was shared with `vht_fit`: Box-Muller normals, plain uniforms).
struct Noise(ChaCha8Rng);

impl vht_fit::NoiseSource for Noise {
    fn normal(&mut self) -> f64 {
        normal(&mut self.0)
    }
    fn uniform(&mut self) -> f64 {
        self.0.gen::<f64>()
    }
}

/// Noise draws per posterior draw in the band of a new measurement.
///
/// Why more than one: the band's ends are the 2.5% and 97.5% sample
/// quantiles, and an interval between sample quantiles of n draws covers a
/// new draw with probability below its nominal level (between the k-th
/// smallest and k-th largest of n, (n + 1 - 2k)/(n + 1): with the default
/// 200 draws and interpolated quantiles, 94.0% for a nominal 95%). Noise is
/// free to draw (no simulation), so 20 per draw make that 4,000 values and
/// the shortfall 0.05%.
pub const NOISE_DRAWS: usize = 20;

/// Bands from posterior draws: each draw simulated once (every observable of
/// the problem at `times`); the band of the observable, and the band of a
/// new measurement with [`NOISE_DRAWS`] draws of noise from the noise model
/// added to each simulation; quantiles at `(1 - level) / 2` and its
/// complement. Returns both bands and the number of draws whose simulation
/// failed.
pub fn bands(
    objective: &Objective,
    draws: &[Vec<f64>],
    times: &[f64],
    level: f64,
    seed: u64,
) -> Result<(Vec<DrawBand>, Vec<DrawBand>, usize), TwinError> {
    // Per draw: the prediction, then the same with noise, NOISE_DRAWS times
    // (None: the simulation failed).
    let sims: Vec<Option<Vec<Vec<vht_fit::Prediction>>>> = draws
        .par_iter()
        .enumerate()
        .map(|(i, x)| {
            let p = objective.predict(x, Some(times)).ok()?;
            // One stream per draw, so the bands do not depend on the thread count.
            let mut rng =
                Noise(ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(i as u64)));
            let mut out = vec![p.clone()];
            for _ in 0..NOISE_DRAWS {
                let mut noisy = p.clone();
                objective.add_noise(&mut noisy, &mut rng)?;
                out.push(noisy);
            }
            Some(out)
        })
        .collect();
    let ok: Vec<&Vec<Vec<vht_fit::Prediction>>> = sims.iter().flatten().collect();
    let failed = sims.len() - ok.len();
    let Some(first) = ok.first() else {
        return Err(TwinError::Options { problem: format!("all {} posterior draws failed to simulate", draws.len()) });
    };
    let alpha = (1.0 - level) / 2.0;
    // `noisy`: the band of a new measurement (every noise draw), else of the observable.
    let bands_at = |noisy: bool| {
        first[0]
            .iter()
            .enumerate()
            .map(|(b, p)| {
                let (mut median, mut lower, mut upper) = (Vec::new(), Vec::new(), Vec::new());
                for i in 0..p.times.len() {
                    let mut v: Vec<f64> = ok
                        .iter()
                        .flat_map(|s| if noisy { &s[1..] } else { &s[..1] })
                        .map(|s| s[b].values[i])
                        .filter(|v| v.is_finite())
                        .collect();
                    v.sort_by(f64::total_cmp);
                    lower.push(vht_fit::quantile(&v, alpha));
                    median.push(vht_fit::quantile(&v, 0.5));
                    upper.push(vht_fit::quantile(&v, 1.0 - alpha));
                }
                DrawBand { observable: p.observable.clone(), times: p.times.clone(), median, lower, upper }
            })
            .collect()
    };
    Ok((bands_at(false), bands_at(true), failed))
}
